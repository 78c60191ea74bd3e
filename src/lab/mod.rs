//! A cluster-free world for tests and `kvip lab`: an HTTP/TLS Lease endpoint that behaves like
//! kube-apiserver where kvip depends on it ([`apiserver`]), throw-away network namespaces
//! ([`netns`]), and a control plane of real kvip processes built from both ([`cluster`]).

pub mod apiserver;
pub mod cluster;
pub mod netns;
