//! The static Pod and the DaemonSet.
//!
//! # Why the kubeconfigs are mounted as a directory
//!
//! kvip reads `/etc/kubernetes/admin.conf` and, during the kubeadm >= 1.29 bootstrap,
//! `/etc/kubernetes/super-admin.conf`, which exists only on the node that ran `kubeadm init`. The
//! manifest must be identical on every node, and no single-file hostPath type works for a file that
//! is missing on most of them: `File` refuses to start the pod on the joined nodes;
//! `FileOrCreate` starts it but leaves an empty `super-admin.conf` behind; an unset type makes the
//! container runtime create a *directory* named `super-admin.conf`. Both leftovers confuse kubeadm
//! and operators later. So kvip mounts the directory that holds the kubeconfigs (`/etc/kubernetes`)
//! with type `Directory` (it always exists on a kubeadm node; nothing is ever created) and
//! read-only. A directory mount has a second benefit: a kubeconfig that kubeadm rewrites (e.g.
//! `kubeadm certs renew`) or that appears later is seen at once, where a single-file bind mount
//! would keep showing the old inode until the pod restarts. The price is that the container can
//! read the rest of `/etc/kubernetes`; admin.conf already grants cluster-admin, so this adds
//! little.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, HTTPGetAction, HostAlias, HostPathVolumeSource, Pod, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::env::PodInputs;

/// The name of the Pod, DaemonSet and ServiceAccount.
pub const NAME: &str = "kvip";

/// The static Pod for `/etc/kubernetes/manifests/`: same file on every control-plane node.
pub fn static_pod(inputs: &PodInputs) -> Pod {
    let volumes: Vec<(Volume, VolumeMount)> = inputs
        .kubeconfig_dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let name = if i == 0 {
                "kubeconfigs".to_string()
            } else {
                format!("kubeconfigs-{i}")
            };
            let path = dir.display().to_string();
            let volume = Volume {
                name: name.clone(),
                host_path: Some(HostPathVolumeSource {
                    path: path.clone(),
                    type_: Some("Directory".into()),
                }),
                ..Default::default()
            };
            let mount = VolumeMount {
                name,
                mount_path: path,
                read_only: Some(true),
                ..Default::default()
            };
            (volume, mount)
        })
        .collect();
    let mut container = container(inputs);
    container.volume_mounts = Some(volumes.iter().map(|(_, m)| m.clone()).collect());
    Pod {
        metadata: metadata(inputs),
        spec: Some(PodSpec {
            volumes: Some(volumes.into_iter().map(|(v, _)| v).collect()),
            // The election must reach the node's own API server before the VIP exists. kvip dials
            // 127.0.0.1:<port> with TLS name `kubernetes` itself; the alias keeps `kubernetes`
            // resolvable for anyone who sets kubernetes_addr=kubernetes:6443 as with kube-vip.
            host_aliases: Some(vec![HostAlias {
                ip: "127.0.0.1".into(),
                hostnames: Some(vec!["kubernetes".into()]),
            }]),
            ..pod_spec(container)
        }),
        ..Default::default()
    }
}

/// A DaemonSet on the control-plane nodes: in-cluster credentials through the `kvip`
/// ServiceAccount (apply `kvip manifest rbac` as well), for clusters that are already up.
pub fn daemonset(inputs: &PodInputs) -> DaemonSet {
    let labels = labels();
    let mut spec = pod_spec(container(inputs));
    spec.service_account_name = Some(NAME.into());
    spec.node_selector = Some(BTreeMap::from([(
        "node-role.kubernetes.io/control-plane".into(),
        String::new(),
    )]));
    spec.tolerations = Some(vec![
        Toleration {
            key: Some("node-role.kubernetes.io/control-plane".into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        },
        Toleration {
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            ..Default::default()
        },
    ]);
    DaemonSet {
        metadata: metadata(inputs),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(spec),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/name".into(), NAME.into())])
}

fn metadata(inputs: &PodInputs) -> ObjectMeta {
    ObjectMeta {
        name: Some(NAME.into()),
        namespace: Some(inputs.namespace.clone()),
        labels: Some(labels()),
        ..Default::default()
    }
}

fn pod_spec(container: Container) -> PodSpec {
    PodSpec {
        containers: vec![container],
        host_network: Some(true),
        // Without the VIP no node can join and no client can reach the API: evicting kvip for
        // ordinary workloads would be the wrong trade.
        priority_class_name: Some("system-node-critical".into()),
        ..Default::default()
    }
}

fn container(inputs: &PodInputs) -> Container {
    let quantity = |q: &str| Quantity(q.into());
    Container {
        name: NAME.into(),
        image: Some(inputs.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec!["run".into()]),
        env: Some(inputs.env.clone()),
        security_context: Some(SecurityContext {
            // NET_ADMIN adds the address over netlink; NET_RAW sends ARP on a packet socket.
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".into(), "NET_RAW".into()]),
                drop: Some(vec!["ALL".into()]),
            }),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            ..Default::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), quantity("10m")),
                ("memory".into(), quantity("16Mi")),
            ])),
            limits: Some(BTreeMap::from([("memory".into(), quantity("64Mi"))])),
            ..Default::default()
        }),
        liveness_probe: inputs.health.map(|addr| Probe {
            http_get: Some(HTTPGetAction {
                host: Some(addr.ip().to_string()),
                port: IntOrString::Int(i32::from(addr.port())),
                path: Some("/healthz".into()),
                scheme: Some("HTTP".into()),
                ..Default::default()
            }),
            initial_delay_seconds: Some(10),
            period_seconds: Some(10),
            timeout_seconds: Some(5),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        ..Default::default()
    }
}
