//! The throw-away certificate authority of the Lease endpoint, and the identities it signs.
//!
//! kube-apiserver authenticates kubeadm's admin.conf and super-admin.conf by their client
//! certificates: the subject's CN is the user name and every O entry is a group. kvip's credential
//! ladder depends on exactly that (admin.conf's group is `kubeadm:cluster-admins`, which RBAC may
//! not bind yet; super-admin.conf's group is `system:masters`, which is never denied), so the test
//! endpoint issues real certificates the same way and reads the identity back from the verified
//! peer certificate, never from anything the client says.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The group kube-apiserver never denies: whoever holds a certificate with it is a super-user.
pub const SYSTEM_MASTERS: &str = "system:masters";

/// OID of the X.520 organizationName attribute (`O=`), which Kubernetes reads as a group.
const ORGANIZATION_OID: &[u64] = &[2, 5, 4, 10];

/// Why the endpoint could not issue or read a certificate.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or failed to sign.
    #[error("lease endpoint PKI: cannot {what}: {source}")]
    Rcgen {
        /// What was being built (e.g. "sign the client certificate for kubernetes-admin").
        what: String,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },
    /// rcgen writes one attribute per type, so a subject can carry at most two O entries.
    #[error(
        "lease endpoint PKI: identity {user:?} has {count} groups; at most 2 fit in one \
         certificate subject here (kubeadm's own certificates carry one)"
    )]
    TooManyGroups {
        /// The user the certificate was for.
        user: String,
        /// How many groups were asked for.
        count: usize,
    },
}

/// Who a client is, as kube-apiserver's x509 authenticator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The certificate's CN: the Kubernetes user name.
    pub user: String,
    /// The certificate's O entries: the Kubernetes groups.
    pub groups: Vec<String>,
}

impl Identity {
    /// An identity from a user name and its groups.
    pub fn new(user: impl Into<String>, groups: &[&str]) -> Self {
        Identity {
            user: user.into(),
            groups: groups.iter().map(|g| (*g).to_string()).collect(),
        }
    }

    /// kubeadm's admin.conf identity (since 1.29): bound to cluster-admin only after kubeadm
    /// creates the `kubeadm:cluster-admins` ClusterRoleBinding.
    pub fn kubeadm_admin() -> Self {
        Identity::new("kubernetes-admin", &["kubeadm:cluster-admins"])
    }

    /// kubeadm's super-admin.conf identity: `system:masters`, always allowed.
    pub fn kubeadm_super_admin() -> Self {
        Identity::new("kubernetes-super-admin", &[SYSTEM_MASTERS])
    }

    /// Whether this identity bypasses authorization, as `system:masters` does.
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == SYSTEM_MASTERS)
    }
}

/// A certificate and its private key, both PEM, ready for a kubeconfig or a TLS config.
#[derive(Debug, Clone)]
pub struct CertifiedKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM.
    pub key_pem: String,
    /// The certificate, DER (for rustls).
    pub(crate) cert_der: CertificateDer<'static>,
    /// The private key, PKCS#8 DER (for rustls).
    pub(crate) key_der: Vec<u8>,
}

impl CertifiedKey {
    /// The private key in the form rustls takes.
    pub(crate) fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// The endpoint's certificate authority: it signs the serving certificate and every client
/// certificate, and it is the only root the endpoint trusts for client authentication.
pub struct CertificateAuthority {
    /// The CA certificate, PEM (what kubeconfig files carry as certificate-authority-data).
    cert_pem: String,
    /// The CA certificate, DER (the client-verifier root).
    cert_der: CertificateDer<'static>,
    /// What signs; kept for the lifetime of the endpoint so tests can mint identities at any time.
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

fn rcgen_err(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
    let what = what.into();
    move |source| PkiError::Rcgen { what, source }
}

impl CertificateAuthority {
    /// A fresh CA, named like kubeadm's (`CN=kubernetes`).
    pub fn generate() -> Result<Self, PkiError> {
        let key = KeyPair::generate().map_err(rcgen_err("generate the CA key"))?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "kubernetes");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(rcgen_err("self-sign the CA"))?;
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub(crate) fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The serving certificate: the SANs kubeadm puts on kube-apiserver's (`kubernetes`,
    /// `localhost`, 127.0.0.1, ::1) plus the caller's, so kvip can dial any address while
    /// checking the name `kubernetes`.
    pub fn issue_serving(
        &self,
        extra_names: &[String],
        extra_ips: &[IpAddr],
    ) -> Result<CertifiedKey, PkiError> {
        let mut names = vec![
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            "localhost".to_string(),
        ];
        names.extend(extra_names.iter().cloned());
        let mut params =
            CertificateParams::new(names).map_err(rcgen_err("use the serving DNS names"))?;
        let mut ips: Vec<IpAddr> =
            vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()];
        ips.extend(extra_ips.iter().copied());
        params
            .subject_alt_names
            .extend(ips.into_iter().map(SanType::IpAddress));
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        self.sign(params, "sign the serving certificate")
    }

    /// A client certificate for `identity`, as kubeadm issues for admin.conf.
    pub fn issue_client(&self, identity: &Identity) -> Result<CertifiedKey, PkiError> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, identity.user.as_str());
        // rcgen keeps one value per attribute type; the custom-OID spelling of O is a second
        // type for it, so two groups fit. Both are read back as O by every x509 parser.
        match identity.groups.as_slice() {
            [] => {}
            [one] => params
                .distinguished_name
                .push(DnType::OrganizationName, one.as_str()),
            [one, two] => {
                params
                    .distinguished_name
                    .push(DnType::OrganizationName, one.as_str());
                params.distinguished_name.push(
                    DnType::CustomDnType(ORGANIZATION_OID.to_vec()),
                    two.as_str(),
                );
            }
            more => {
                return Err(PkiError::TooManyGroups {
                    user: identity.user.clone(),
                    count: more.len(),
                });
            }
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        self.sign(
            params,
            format!("sign the client certificate for {:?}", identity.user),
        )
    }

    fn sign(
        &self,
        params: CertificateParams,
        what: impl Into<String>,
    ) -> Result<CertifiedKey, PkiError> {
        let what = what.into();
        let key = KeyPair::generate().map_err(rcgen_err(format!("generate a key to {what}")))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(rcgen_err(what))?;
        Ok(CertifiedKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }
}

/// The identity in a verified client certificate, read as kube-apiserver's x509 authenticator
/// does (CN = user, every O = a group). `None` for a certificate without a CN, which the real
/// authenticator rejects too.
pub(crate) fn identity_of(cert: &CertificateDer<'_>) -> Option<Identity> {
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let user = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())?
        .to_string();
    if user.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    Some(Identity { user, groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificate_carries_user_and_both_groups() {
        let ca = CertificateAuthority::generate().unwrap();
        let wanted = Identity::new("node-a", &["group-one", "group-two"]);
        let cert = ca.issue_client(&wanted).unwrap();
        assert_eq!(identity_of(&cert.cert_der), Some(wanted));
    }

    #[test]
    fn three_groups_are_refused_with_the_user_named() {
        let ca = CertificateAuthority::generate().unwrap();
        let err = ca
            .issue_client(&Identity::new("node-a", &["a", "b", "c"]))
            .unwrap_err();
        assert!(err.to_string().contains("\"node-a\" has 3 groups"), "{err}");
    }
}
