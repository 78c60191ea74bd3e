//! The credential ladder: which identity the elector uses for the Lease.
//!
//! Three rungs, least privileged first:
//!
//! - **ServiceAccount** (DaemonSet mode, `kvip manifest daemonset` + `kvip manifest rbac`): when
//!   the pod has a ServiceAccount token (`<dir>/token`, by default
//!   [`DEFAULT_SERVICE_ACCOUNT_DIR`]), that is the credential and the kubeconfig files are not
//!   consulted. It can touch leases in one namespace and nothing else. A 403 means the Role or
//!   RoleBinding is missing: the error names the ServiceAccount and says to apply
//!   `kvip manifest rbac`, and the elector retries with back-off. Static pods never have a token,
//!   so they go on to the kubeconfigs. See [`service_account`].
//! - **admin.conf**, when it is authorized for the Lease;
//! - **super-admin.conf**, only while admin.conf is forbidden, and back to admin.conf as soon as
//!   it works.
//!
//! Why the last two: since kubeadm 1.29, admin.conf's user is bound to cluster-admin by a
//! ClusterRoleBinding that `kubeadm init` creates *through the VIP*. On the first node the elector
//! gets 403 for the Lease, so no VIP, so no binding: a deadlock that kube-vip users break by
//! hand-editing the manifest to mount super-admin.conf (kube-vip#684). super-admin.conf bypasses
//! RBAC but exists only on the node that ran `kubeadm init`, so the ladder uses it only while
//! admin.conf is forbidden (least privilege), and keeps re-checking admin.conf every few seconds.
//!
//! Every rung reaches the same [`ApiEndpoint`] (by default the node's own API server) with the
//! same client settings (timeouts, no retries, a separate watch client): one code path.
//!
//! The ladder is owned by the elector task (one owner); it only changes rung when the elector
//! reports a 403 or when [`Ladder::recheck_admin`] finds admin.conf authorized again. The current
//! rung is published on a `watch` channel for the metric and logs.

mod kubeconfig;
pub mod service_account;

pub use kubeconfig::{ApiEndpoint, ClientTimeouts, Clients, Problem};
pub use service_account::DEFAULT_SERVICE_ACCOUNT_DIR;

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::watch;
use tokio::time::Instant;

/// Default path of the least-privileged kubeconfig (kubeadm writes it on every control plane).
pub const DEFAULT_ADMIN_KUBECONFIG: &str = "/etc/kubernetes/admin.conf";
/// Default path of kubeadm's break-glass kubeconfig (only on the node that ran `kubeadm init`).
pub const DEFAULT_SUPER_ADMIN_KUBECONFIG: &str = "/etc/kubernetes/super-admin.conf";
/// How often admin.conf is re-tried while super-admin.conf is in use.
pub const DEFAULT_ADMIN_RECHECK: Duration = Duration::from_secs(5);

/// A rung of the ladder, for the metric and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    /// The pod's ServiceAccount token: DaemonSet mode, whenever the token exists.
    ServiceAccount,
    /// admin.conf: the normal case for a static pod.
    Admin,
    /// super-admin.conf: only while admin.conf is forbidden.
    SuperAdmin,
}

impl Credential {
    /// Every rung, for metrics that show one series per rung.
    pub const ALL: [Credential; 3] = [
        Credential::ServiceAccount,
        Credential::Admin,
        Credential::SuperAdmin,
    ];

    /// The label used in logs, errors and the metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Credential::ServiceAccount => "serviceaccount",
            Credential::Admin => "admin.conf",
            Credential::SuperAdmin => "super-admin.conf",
        }
    }
}

impl std::fmt::Display for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the credentials live (all configurable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigPaths {
    /// admin.conf.
    pub admin: PathBuf,
    /// super-admin.conf.
    pub super_admin: PathBuf,
    /// The ServiceAccount directory (`token`, `ca.crt`, `namespace`); its `token` selects the
    /// ServiceAccount rung.
    pub service_account: PathBuf,
}

impl Default for KubeconfigPaths {
    fn default() -> Self {
        Self {
            admin: DEFAULT_ADMIN_KUBECONFIG.into(),
            super_admin: DEFAULT_SUPER_ADMIN_KUBECONFIG.into(),
            service_account: DEFAULT_SERVICE_ACCOUNT_DIR.into(),
        }
    }
}

/// No credential is usable: says what is wrong, so one log line tells the operator everything.
/// The elector retries with back-off; it never exits over this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LadderError {
    /// Static-pod mode: neither kubeconfig is usable; what is wrong with each.
    #[error("no usable kubeconfig: {}; {}", .super_admin.describe_as(Credential::SuperAdmin), .admin.describe_as(Credential::Admin))]
    Kubeconfigs {
        /// What is wrong with admin.conf.
        admin: Problem,
        /// What is wrong with super-admin.conf.
        super_admin: Problem,
    },
    /// DaemonSet mode: the pod's ServiceAccount token is the credential and it is not usable
    /// (typically 403: `kvip manifest rbac` not applied).
    #[error("ServiceAccount token in {}: {}", .dir.display(), .problem.describe(Credential::ServiceAccount))]
    ServiceAccount {
        /// The ServiceAccount directory.
        dir: PathBuf,
        /// What is wrong.
        problem: Problem,
    },
}

impl Problem {
    fn describe_as(&self, credential: Credential) -> String {
        format!("{credential}: {}", self.describe(credential))
    }
}

/// Where the Lease lives, for the admin.conf re-check and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseLocation {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
}

/// Chooses the kubeconfig the elector uses (see the module docs).
#[derive(Debug)]
pub struct Ladder {
    paths: KubeconfigPaths,
    endpoint: ApiEndpoint,
    timeouts: ClientTimeouts,
    lease: LeaseLocation,
    /// The clients in use; `None` until the first rung is chosen, or after both failed.
    active: Option<Clients>,
    /// Why admin.conf is not in use, while that is the case.
    admin_problem: Option<Problem>,
    /// How often admin.conf is re-checked while on super-admin.conf.
    admin_recheck: Duration,
    next_admin_recheck: Option<Instant>,
    credential: watch::Sender<Option<Credential>>,
    /// The rung last announced in the log, so retries of the same rung stay quiet.
    logged: Option<Credential>,
}

impl Ladder {
    /// A ladder over `paths`, reaching `endpoint`, for the Lease at `lease`.
    pub fn new(
        paths: KubeconfigPaths,
        endpoint: ApiEndpoint,
        timeouts: ClientTimeouts,
        lease: LeaseLocation,
    ) -> Self {
        Self {
            paths,
            endpoint,
            timeouts,
            lease,
            active: None,
            admin_problem: None,
            admin_recheck: DEFAULT_ADMIN_RECHECK,
            next_admin_recheck: None,
            credential: watch::Sender::new(None),
            logged: None,
        }
    }

    /// Changes how often admin.conf is re-checked while on super-admin.conf (tests use ~1 s).
    pub fn with_admin_recheck(mut self, every: Duration) -> Self {
        self.admin_recheck = every;
        self
    }

    /// The rung in use, for the metric; `None` while no credential is usable.
    pub fn credential(&self) -> watch::Receiver<Option<Credential>> {
        self.credential.subscribe()
    }

    /// The clients to use now, choosing a rung if none is active: the ServiceAccount when its
    /// token exists (and nothing else then); otherwise admin.conf unless it is known to be
    /// forbidden or cannot be loaded, then super-admin.conf. A forbidden admin.conf is still
    /// tried again when super-admin.conf is unusable (the binding may exist by now).
    pub async fn clients(&mut self) -> Result<Clients, LadderError> {
        if let Some(active) = &self.active {
            return Ok(active.clone());
        }
        let dir = self.paths.service_account.clone();
        if service_account::present(&dir) {
            return match self.load(Credential::ServiceAccount).await {
                Ok(clients) => {
                    let reason = format!(
                        "ServiceAccount token found at {}",
                        service_account::token_path(&dir).display()
                    );
                    Ok(self.activate(clients, reason))
                }
                Err(problem) => {
                    self.deactivate();
                    Err(LadderError::ServiceAccount { dir, problem })
                }
            };
        }
        let admin = self.load(Credential::Admin).await;
        let admin_forbidden = matches!(self.admin_problem, Some(Problem::Forbidden { .. }));
        if let (Ok(clients), false) = (&admin, admin_forbidden) {
            return Ok(self.activate(clients.clone(), "admin.conf loaded".to_owned()));
        }
        let admin_reason = match &admin {
            Err(p) => p.clone(),
            Ok(_) => self.admin_problem.clone().unwrap_or(Problem::Forbidden {
                namespace: self.lease.namespace.clone(),
                message: String::new(),
            }),
        };
        match self.load(Credential::SuperAdmin).await {
            Ok(clients) => {
                let reason = format!("admin.conf: {}", admin_reason.describe(Credential::Admin));
                self.admin_problem = Some(admin_reason);
                Ok(self.activate(clients, reason))
            }
            Err(super_problem) => match admin {
                Ok(clients) => Ok(self.activate(clients, "retrying admin.conf".to_owned())),
                Err(admin_problem) => {
                    self.deactivate();
                    Err(LadderError::Kubeconfigs {
                        admin: admin_problem,
                        super_admin: super_problem,
                    })
                }
            },
        }
    }

    /// Reports a 403 Forbidden for the Lease from the clients of `credential`. Moves to
    /// super-admin.conf when admin.conf was forbidden and super-admin.conf is usable; otherwise
    /// returns the error (naming both files, or the ServiceAccount and `kvip manifest rbac`), and
    /// the next [`Ladder::clients`] starts over.
    pub async fn forbidden(
        &mut self,
        credential: Credential,
        message: &str,
    ) -> Result<(), LadderError> {
        let problem = Problem::Forbidden {
            namespace: self.lease.namespace.clone(),
            message: message.to_owned(),
        };
        if self.active.as_ref().map(|c| c.credential) != Some(credential) {
            return Ok(()); // a stale report: the rung changed since the request was sent
        }
        match credential {
            Credential::Admin => {
                self.admin_problem = Some(problem.clone());
                match self.load(Credential::SuperAdmin).await {
                    Ok(clients) => {
                        let reason = format!("admin.conf: {}", problem.describe(credential));
                        self.activate(clients, reason);
                        Ok(())
                    }
                    Err(super_problem) => {
                        self.deactivate();
                        Err(LadderError::Kubeconfigs {
                            admin: problem,
                            super_admin: super_problem,
                        })
                    }
                }
            }
            Credential::SuperAdmin => {
                self.deactivate();
                Err(LadderError::Kubeconfigs {
                    admin: self.admin_problem.clone().unwrap_or(problem.clone()),
                    super_admin: problem,
                })
            }
            // No other rung to climb to: the kubeconfigs are not this pod's credential.
            Credential::ServiceAccount => {
                self.deactivate();
                Err(LadderError::ServiceAccount {
                    dir: self.paths.service_account.clone(),
                    problem,
                })
            }
        }
    }

    /// When admin.conf should next be re-checked (`None` unless super-admin.conf is in use).
    pub fn next_admin_recheck(&self) -> Option<Instant> {
        self.next_admin_recheck
    }

    /// While on super-admin.conf: GETs the Lease with admin.conf and moves back to it when that
    /// is authorized (200, or 404 which also means "allowed to look"). Returns whether it moved.
    pub async fn recheck_admin(&mut self) -> bool {
        if self.active.as_ref().map(|c| c.credential) != Some(Credential::SuperAdmin) {
            self.next_admin_recheck = None;
            return false;
        }
        self.next_admin_recheck = Some(Instant::now() + self.admin_recheck);
        let clients = match self.load(Credential::Admin).await {
            Ok(clients) => clients,
            Err(problem) => {
                self.admin_problem = Some(problem);
                return false;
            }
        };
        let api: kube::Api<Lease> =
            kube::Api::namespaced(clients.requests.clone(), &self.lease.namespace);
        let outcome =
            tokio::time::timeout(self.timeouts.request, api.get_opt(&self.lease.name)).await;
        match outcome {
            Ok(Ok(_)) => {
                self.admin_problem = None;
                self.activate(clients, "admin.conf is authorized again".to_owned());
                true
            }
            Ok(Err(kube::Error::Api(status))) if status.code == 403 => {
                self.admin_problem = Some(Problem::Forbidden {
                    namespace: self.lease.namespace.clone(),
                    message: status.message.clone(),
                });
                false
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "admin.conf re-check did not reach the API server");
                false
            }
            Err(_) => false,
        }
    }

    async fn load(&self, credential: Credential) -> Result<Clients, Problem> {
        let path = match credential {
            Credential::ServiceAccount => {
                let dir = &self.paths.service_account;
                return service_account::load(dir, &self.endpoint, self.timeouts).await;
            }
            Credential::Admin => &self.paths.admin,
            Credential::SuperAdmin => &self.paths.super_admin,
        };
        kubeconfig::load(credential, path, &self.endpoint, self.timeouts).await
    }

    fn activate(&mut self, clients: Clients, reason: String) -> Clients {
        let now = clients.credential;
        if self.logged != Some(now) {
            let previous = self.logged.map_or("none", Credential::as_str);
            tracing::info!(credential = %now, previous, %reason, "credential switched");
            self.logged = Some(now);
        }
        self.next_admin_recheck =
            (now == Credential::SuperAdmin).then(|| Instant::now() + self.admin_recheck);
        self.active = Some(clients.clone());
        self.credential.send_replace(Some(now));
        clients
    }

    fn deactivate(&mut self) {
        self.active = None;
        self.next_admin_recheck = None;
        self.credential.send_replace(None);
    }
}

#[cfg(test)]
mod tests;
