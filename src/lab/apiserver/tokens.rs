//! Bearer tokens, as kube-apiserver's token authenticators see them: a DaemonSet-mode kvip
//! authenticates with its pod's ServiceAccount token instead of a client certificate.
//!
//! Why here and not in `access`: authentication (who is this?) and authorization (may they?)
//! are separate steps in kube-apiserver, and the tests drive them separately: a token can be
//! valid and forbidden (RBAC not applied yet), or revoked while its identity stays granted
//! (token rotation).
//!
//! Order, as kube-apiserver's union authenticator: a verified client certificate wins; without
//! one, an `Authorization: Bearer <token>` header is looked up; an unknown token is 401 (never
//! anonymous), a request with neither is anonymous (401 for Leases).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use hyper::HeaderMap;

use super::pki::Identity;

/// The ServiceAccount group every ServiceAccount token carries.
pub const SERVICE_ACCOUNTS: &str = "system:serviceaccounts";

impl Identity {
    /// The identity kube-apiserver gives a ServiceAccount token: user
    /// `system:serviceaccount:<namespace>:<name>`, groups `system:serviceaccounts` and
    /// `system:serviceaccounts:<namespace>`.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Identity {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                SERVICE_ACCOUNTS.to_string(),
                format!("{SERVICE_ACCOUNTS}:{namespace}"),
            ],
        }
    }
}

/// The tokens the endpoint accepts, and how often each was presented (to tell, after a rotation,
/// which token a client is using).
#[derive(Debug, Default)]
pub struct Tokens {
    known: Mutex<HashMap<String, Known>>,
}

#[derive(Debug)]
struct Known {
    identity: Identity,
    requests: u64,
}

/// Who sent a request, once authentication has run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A client certificate or a known token.
    Authenticated {
        /// The identity.
        identity: Identity,
        /// Whether it came from a bearer token (the connection does not know it up front).
        by_token: bool,
    },
    /// Neither a certificate nor a token.
    Anonymous,
    /// A bearer token the endpoint does not know: 401, whatever the path.
    BadToken,
}

impl Caller {
    /// The identity, if authenticated.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Caller::Authenticated { identity, .. } => Some(identity),
            Caller::Anonymous | Caller::BadToken => None,
        }
    }
}

impl Tokens {
    /// Accepts `token` as `identity` from now on.
    pub fn add(&self, token: impl Into<String>, identity: Identity) {
        self.lock().insert(
            token.into(),
            Known {
                identity,
                requests: 0,
            },
        );
    }

    /// Stops accepting `token` (an expired or invalidated token): its next request is 401.
    pub fn remove(&self, token: &str) {
        self.lock().remove(token);
    }

    /// How many requests presented `token` while it was known.
    pub fn requests(&self, token: &str) -> u64 {
        self.lock().get(token).map_or(0, |k| k.requests)
    }

    /// Authenticates one request: the connection's certificate identity, else the bearer token.
    pub fn authenticate(&self, certificate: Option<&Identity>, headers: &HeaderMap) -> Caller {
        if let Some(identity) = certificate {
            return Caller::Authenticated {
                identity: identity.clone(),
                by_token: false,
            };
        }
        let Some(token) = bearer_token(headers) else {
            return Caller::Anonymous;
        };
        match self.lock().get_mut(token) {
            Some(known) => {
                known.requests += 1;
                Caller::Authenticated {
                    identity: known.identity.clone(),
                    by_token: true,
                }
            }
            None => Caller::BadToken,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Known>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, as
/// kube-apiserver's bearer authenticator); `None` without one or with an empty token.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Writes what kubelet mounts at `/var/run/secrets/kubernetes.io/serviceaccount`: `token` (no
/// trailing newline, like the projected token), `ca.crt` and `namespace`.
pub fn write_service_account_dir(
    dir: &Path,
    token: &str,
    ca_pem: &str,
    namespace: &str,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ca.crt"), ca_pem)?;
    std::fs::write(dir.join("namespace"), namespace)?;
    write_token(dir, token)
}

/// Replaces `<dir>/token` atomically (write aside, rename), as kubelet's atomic writer does when
/// it rotates a projected token, so a reader never sees a half-written token.
pub fn write_token(dir: &Path, token: &str) -> std::io::Result<()> {
    let aside = dir.join(".token.new");
    std::fs::write(&aside, token)?;
    std::fs::rename(aside, dir.join("token"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(hyper::header::AUTHORIZATION, authorization.parse().unwrap());
        headers
    }

    #[test]
    fn a_known_token_is_its_service_account_and_an_unknown_one_is_refused() {
        let tokens = Tokens::default();
        let kvip = Identity::service_account("kube-system", "kvip");
        tokens.add("t-1", kvip.clone());
        assert_eq!(
            tokens.authenticate(None, &headers("Bearer t-1")),
            Caller::Authenticated {
                identity: kvip.clone(),
                by_token: true
            }
        );
        assert_eq!(
            tokens.authenticate(None, &headers("bearer t-1")).identity(),
            Some(&kvip)
        );
        assert_eq!(tokens.requests("t-1"), 2);
        assert_eq!(
            tokens.authenticate(None, &headers("Bearer nope")),
            Caller::BadToken
        );
        assert_eq!(
            tokens.authenticate(None, &HeaderMap::new()),
            Caller::Anonymous
        );
        tokens.remove("t-1");
        assert_eq!(
            tokens.authenticate(None, &headers("Bearer t-1")),
            Caller::BadToken
        );
    }

    #[test]
    fn a_client_certificate_wins_over_a_token() {
        let tokens = Tokens::default();
        let admin = Identity::kubeadm_admin();
        let caller = tokens.authenticate(Some(&admin), &headers("Bearer unknown"));
        assert_eq!(caller.identity(), Some(&admin));
    }

    #[test]
    fn service_account_identity_has_kube_apiserver_user_and_groups() {
        let id = Identity::service_account("kube-system", "kvip");
        assert_eq!(id.user, "system:serviceaccount:kube-system:kvip");
        assert_eq!(
            id.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system"
            ]
        );
        assert!(!id.is_master());
    }
}
