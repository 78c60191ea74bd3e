//! kvip: a Rust-native, drop-in replacement for kube-vip's control-plane ARP mode.
//!
//! Every control-plane node runs kvip as a static pod. The nodes elect one leader through a
//! `coordination.k8s.io/v1` Lease; the leader puts the virtual IP (VIP) on its interface and
//! announces it with gratuitous ARP (IPv4) or unsolicited neighbour advertisements (IPv6).
//!
//! # Layout
//!
//! In the order data flows:
//!
//! - [`cli`]: the command line (clap). kube-vip's flags and environment variables, with kvip's own
//!   options beside them; nothing here is validated.
//! - [`config`]: turns the command line into a validated [`config::Config`], or one error that names
//!   the option, the value and the fix.
//! - [`credentials`]: the credential ladder: the pod's ServiceAccount token when it has one
//!   (DaemonSet mode); else admin.conf when it is authorized, super-admin.conf while admin.conf is
//!   forbidden (kubeadm >= 1.29 bootstrap), back to admin.conf as soon as it works.
//! - [`election`]: a Lease elector with client-go semantics, so kvip and kube-vip share one lock.
//! - [`address`]: the VIP on the interface over netlink, with a kernel-enforced lifetime fence.
//! - [`announce`]: gratuitous ARP / unsolicited NA through one long-lived raw socket.
//! - [`daemon`]: the supervisor that turns election events into address and announce commands.
//!
//! Beside the data path:
//!
//! - [`manifest`]: the static Pod, DaemonSet and RBAC manifests, built from k8s-openapi types.
//! - [`observability`]: logging, Prometheus metrics, `/healthz` and `/readyz`.
//! - [`lab`]: a cluster-free world for tests and `kvip lab`: the in-repo Lease endpoint, throw-away
//!   network namespaces, and a whole control plane of kvip processes on one bridge.

pub mod address;
pub mod announce;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod election;
pub mod lab;
pub mod manifest;
pub mod observability;
