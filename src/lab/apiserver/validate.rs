//! Decoding and validating a Lease body the way kube-apiserver does.
//!
//! Two kinds of rejection, as upstream: a body that does not *decode* as a `coordination.k8s.io/v1`
//! Lease (bad JSON, wrong types, a MicroTime that is not RFC 3339 with exactly six fractional
//! digits, a name or namespace that contradicts the URL) is 400 BadRequest; a decoded Lease that
//! breaks a validation rule (name not a DNS subdomain, non-positive duration, negative
//! transitions) is 422 Invalid. kvip must never produce either, and the tests catch it if it does.

use k8s_openapi::api::coordination::v1::Lease;
use serde_json::Value;

use super::status::{self, ApiError, FieldError};

const API_VERSION: &str = "coordination.k8s.io/v1";
const KIND: &str = "Lease";

/// Which request the body came with: names on the URL must match the body.
pub struct Target<'a> {
    /// The namespace on the URL.
    pub namespace: &'a str,
    /// The name on the URL (PUT) or None (POST).
    pub name: Option<&'a str>,
}

fn cannot_handle(detail: impl std::fmt::Display) -> ApiError {
    status::bad_request(format!(
        "{KIND} in version \"v1\" cannot be handled as a {KIND}: {detail}"
    ))
}

/// Decodes and validates a Lease body for `target`; the result has namespace and name set.
pub fn lease_body(body: &[u8], target: &Target<'_>) -> Result<Lease, ApiError> {
    let mut value: Value = serde_json::from_slice(body).map_err(cannot_handle)?;
    let Some(object) = value.as_object_mut() else {
        return Err(cannot_handle("the body is not a JSON object"));
    };
    for (field, expected) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        match object.get(field).and_then(Value::as_str) {
            None | Some("") => {
                object.insert(field.to_string(), Value::from(expected));
            }
            Some(seen) if seen != expected => {
                return Err(status::bad_request(format!(
                    "the {field} in the data ({seen}) does not match the expected {field} \
                     ({expected})"
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(spec) = object.get("spec").and_then(Value::as_object) {
        for field in ["acquireTime", "renewTime"] {
            if let Some(Value::String(text)) = spec.get(field)
                && !is_rfc3339_micro(text)
            {
                return Err(cannot_handle(format!(
                    "spec.{field}: parsing time {text:?} as \"2006-01-02T15:04:05.000000Z07:00\": \
                     not RFC 3339 with exactly 6 fractional digits (MicroTime)"
                )));
            }
        }
    }
    let mut lease: Lease = serde_json::from_value(value).map_err(cannot_handle)?;

    let meta = &mut lease.metadata;
    match meta.namespace.as_deref() {
        None | Some("") => meta.namespace = Some(target.namespace.to_string()),
        Some(ns) if ns != target.namespace => {
            return Err(status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the \
                 request"
                    .to_string(),
            ));
        }
        Some(_) => {}
    }
    if let Some(url_name) = target.name {
        match meta.name.as_deref() {
            Some(name) if name != url_name => {
                return Err(status::bad_request(format!(
                    "the name of the object ({name}) does not match the name on the URL \
                     ({url_name})"
                )));
            }
            None | Some("") => meta.name = Some(url_name.to_string()),
            Some(_) => {}
        }
    }
    validate(&lease)?;
    Ok(lease)
}

/// The rules of `ValidateLease`, as far as a Lease body can break them.
fn validate(lease: &Lease) -> Result<(), ApiError> {
    let name = lease.metadata.name.clone().unwrap_or_default();
    let mut errors = Vec::new();
    if name.is_empty() {
        return Err(status::invalid(
            KIND,
            "",
            &[FieldError {
                field: "metadata.name".to_string(),
                value: "\"\"".to_string(),
                detail: "name or generateName is required".to_string(),
            }],
        ));
    }
    if !is_dns_subdomain(&name) {
        errors.push(FieldError {
            field: "metadata.name".to_string(),
            value: format!("{name:?}"),
            detail: "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
                     characters, '-' or '.', and must start and end with an alphanumeric character"
                .to_string(),
        });
    }
    if let Some(spec) = &lease.spec {
        if let Some(d) = spec.lease_duration_seconds.filter(|d| *d <= 0) {
            errors.push(FieldError {
                field: "spec.leaseDurationSeconds".to_string(),
                value: d.to_string(),
                detail: "must be greater than 0".to_string(),
            });
        }
        if let Some(t) = spec.lease_transitions.filter(|t| *t < 0) {
            errors.push(FieldError {
                field: "spec.leaseTransitions".to_string(),
                value: t.to_string(),
                detail: "must be greater than or equal to 0".to_string(),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(status::invalid(KIND, &name, &errors))
    }
}

/// Go's `time.Parse(RFC3339Micro, s)`: `YYYY-MM-DDTHH:MM:SS.ffffff` then `Z` or `±HH:MM`.
fn is_rfc3339_micro(s: &str) -> bool {
    const PATTERN: &[u8] = b"dddd-dd-ddTdd:dd:dd.dddddd";
    let bytes = s.as_bytes();
    if bytes.len() < PATTERN.len() {
        return false;
    }
    let (stamp, zone) = bytes.split_at(PATTERN.len());
    let stamp_ok = stamp.iter().zip(PATTERN).all(|(c, p)| match p {
        b'd' => c.is_ascii_digit(),
        other => c == other,
    });
    let zone_ok = zone == b"Z"
        || (zone.len() == 6
            && matches!(zone[0], b'+' | b'-')
            && zone[1..3].iter().all(u8::is_ascii_digit)
            && zone[3] == b':'
            && zone[4..].iter().all(u8::is_ascii_digit));
    stamp_ok && zone_ok
}

/// RFC 1123 subdomain, as `metadata.name` of a Lease must be.
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microtime_needs_exactly_six_fractional_digits() {
        assert!(is_rfc3339_micro("2025-01-02T03:04:05.123456Z"));
        assert!(is_rfc3339_micro("2025-01-02T03:04:05.123456+02:00"));
        assert!(!is_rfc3339_micro("2025-01-02T03:04:05Z"));
        assert!(!is_rfc3339_micro("2025-01-02T03:04:05.123Z"));
        assert!(!is_rfc3339_micro("2025-01-02T03:04:05.123456789Z"));
        assert!(!is_rfc3339_micro("2025-01-02 03:04:05.123456Z"));
    }

    #[test]
    fn lease_names_are_dns_subdomains() {
        assert!(is_dns_subdomain("plndr-cp-lock"));
        assert!(is_dns_subdomain("a.b-c"));
        assert!(!is_dns_subdomain("Plndr"));
        assert!(!is_dns_subdomain("-x"));
        assert!(!is_dns_subdomain("a..b"));
    }

    #[test]
    fn string_duration_is_a_bad_request_and_zero_duration_is_invalid() {
        let target = Target {
            namespace: "kube-system",
            name: None,
        };
        let text = br#"{"metadata":{"name":"l"},"spec":{"leaseDurationSeconds":"15"}}"#;
        assert_eq!(lease_body(text, &target).unwrap_err().code, 400);
        let zero = br#"{"metadata":{"name":"l"},"spec":{"leaseDurationSeconds":0}}"#;
        let err = lease_body(zero, &target).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.status.message.as_deref(),
            Some(
                "Lease.coordination.k8s.io \"l\" is invalid: spec.leaseDurationSeconds: \
                 Invalid value: 0: must be greater than 0"
            )
        );
    }
}
