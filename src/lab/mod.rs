//! A cluster-free world for tests and `kvip lab`: an HTTP/TLS Lease endpoint that behaves like
//! kube-apiserver where kvip depends on it, throw-away network namespaces, and the failover lab
//! built on them.
//!
//! - [`cluster`]: N nodes, the Lease endpoint and a client on one bridge, all in namespaces.
//! - [`probe`] and [`timeline`]: the client's view of the VIP, and the verdict on a failover.
//! - [`failover`]: fault → failover → recovery rounds, for kvip or [`keepalived`].
//! - [`report`]: percentiles, the table and the JSON document; [`command`]: `kvip lab`.

pub mod apiserver;
pub mod cluster;
pub mod command;
pub mod failover;
pub mod host;
pub mod keepalived;
pub mod logs;
pub mod netns;
pub mod probe;
pub mod report;
pub mod timeline;

pub use host::interrupted;
