//! Who may do what, and who can reach the server at all: the runtime-changeable parts of the
//! endpoint that tests drive.
//!
//! Authorization replays kubeadm >= 1.29: `system:masters` (super-admin.conf) is always allowed,
//! every other subject is denied until a test grants it (kubeadm creating the
//! `kubeadm:cluster-admins` ClusterRoleBinding) and denied again when revoked.
//!
//! Outages are per identity so a test can cut one elector off the API while the others keep
//! working; they are published through a `tokio::sync::watch` channel so that open connections and
//! watch streams react at once, not at their next request.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::pki::Identity;

/// A Kubernetes RBAC subject: a user name or a group name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A user (the client certificate's CN).
    User(String),
    /// A group (one of the client certificate's O entries).
    Group(String),
}

impl Subject {
    /// The user `name`.
    pub fn user(name: impl Into<String>) -> Self {
        Subject::User(name.into())
    }

    /// The group `name`.
    pub fn group(name: impl Into<String>) -> Self {
        Subject::Group(name.into())
    }

    fn covers(&self, identity: &Identity) -> bool {
        match self {
            Subject::User(user) => *user == identity.user,
            Subject::Group(group) => identity.groups.iter().any(|g| g == group),
        }
    }
}

/// How an outage looks to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageMode {
    /// Connections are dropped at the transport level (no HTTP response) and new ones are
    /// closed right after the TLS handshake: like an API server that crashed or restarted.
    /// Watch streams end abruptly.
    Drop,
    /// Requests are held without an answer until the outage ends, and watch streams deliver
    /// nothing: like a black-holed network path. The client's own timeouts must fire.
    Hang,
}

/// Whom an outage affects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OutageScope {
    /// Every client, including ones without a certificate.
    All,
    /// Every identity that this subject covers.
    Subject(Subject),
}

impl From<Subject> for OutageScope {
    fn from(subject: Subject) -> Self {
        OutageScope::Subject(subject)
    }
}

/// The outages in force; a snapshot is what the watch channel carries.
#[derive(Debug, Clone, Default)]
pub struct Outages {
    scopes: HashMap<OutageScope, OutageMode>,
}

impl Outages {
    /// The outage that applies to a client with `identity` (None = no certificate), if any.
    /// When several apply, dropping wins over hanging.
    pub fn mode_for(&self, identity: Option<&Identity>) -> Option<OutageMode> {
        let applies = |scope: &OutageScope| match scope {
            OutageScope::All => true,
            OutageScope::Subject(subject) => identity.is_some_and(|id| subject.covers(id)),
        };
        let modes: Vec<OutageMode> = self
            .scopes
            .iter()
            .filter(|(scope, _)| applies(scope))
            .map(|(_, mode)| *mode)
            .collect();
        if modes.contains(&OutageMode::Drop) {
            Some(OutageMode::Drop)
        } else {
            modes.first().copied()
        }
    }

    /// Starts (`Some`) or ends (`None`) the outage for `scope`.
    pub fn set(&mut self, scope: OutageScope, mode: Option<OutageMode>) {
        match mode {
            Some(mode) => self.scopes.insert(scope, mode),
            None => self.scopes.remove(&scope),
        };
    }
}

/// The RBAC grants in force.
#[derive(Debug, Default)]
pub struct Grants {
    subjects: Mutex<HashSet<Subject>>,
}

impl Grants {
    /// Allows `subject` everything on Leases.
    pub fn grant(&self, subject: Subject) {
        self.lock().insert(subject);
    }

    /// Takes a grant away again.
    pub fn revoke(&self, subject: &Subject) {
        self.lock().remove(subject);
    }

    /// Whether `identity` may act on Leases.
    pub fn allows(&self, identity: &Identity) -> bool {
        identity.is_master() || self.lock().iter().any(|s| s.covers(identity))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Subject>> {
        self.subjects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_is_denied_until_its_group_is_granted_and_masters_always_pass() {
        let grants = Grants::default();
        let admin = Identity::kubeadm_admin();
        assert!(!grants.allows(&admin));
        assert!(grants.allows(&Identity::kubeadm_super_admin()));
        grants.grant(Subject::group("kubeadm:cluster-admins"));
        assert!(grants.allows(&admin));
        grants.revoke(&Subject::group("kubeadm:cluster-admins"));
        assert!(!grants.allows(&admin));
    }

    #[test]
    fn an_outage_for_one_user_spares_the_others_and_drop_beats_hang() {
        let mut outages = Outages::default();
        let a = Identity::new("node-a", &[]);
        let b = Identity::new("node-b", &[]);
        outages.set(Subject::user("node-a").into(), Some(OutageMode::Hang));
        assert_eq!(outages.mode_for(Some(&a)), Some(OutageMode::Hang));
        assert_eq!(outages.mode_for(Some(&b)), None);
        assert_eq!(outages.mode_for(None), None);
        outages.set(OutageScope::All, Some(OutageMode::Drop));
        assert_eq!(outages.mode_for(Some(&a)), Some(OutageMode::Drop));
        assert_eq!(outages.mode_for(None), Some(OutageMode::Drop));
    }
}
