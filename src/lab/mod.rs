//! A cluster-free world for tests and `kvip lab`: an HTTP/TLS Lease endpoint that behaves like
//! kube-apiserver where kvip depends on it, and throw-away network namespaces.

pub mod apiserver;
pub mod cluster;
pub mod netns;
