//! `Status` bodies with kube-apiserver's exact reasons, codes and messages.
//!
//! kvip decides what to do from these (`Conflict` = someone else won the write, `Forbidden` =
//! climb the credential ladder, `NotFound` = create the Lease), and its operators read the
//! messages in logs, so they are spelled as the real server spells them.

use bytes::Bytes;
use hyper::StatusCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

/// The API group every Lease request is in.
pub const GROUP: &str = "coordination.k8s.io";
/// The resource name (plural) kube-apiserver uses in its messages and `details.kind`.
pub const RESOURCE: &str = "leases";

/// An API error: the HTTP status and the `Status` body to send with it.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status code (also in `status.code`).
    pub code: StatusCode,
    /// The body (boxed: it is large, and errors travel through every `Result` here).
    pub status: Box<Status>,
}

impl ApiError {
    fn new(
        code: StatusCode,
        reason: &str,
        message: String,
        details: Option<StatusDetails>,
    ) -> Self {
        ApiError {
            code,
            status: Box::new(Status {
                code: Some(i32::from(code.as_u16())),
                details,
                message: Some(message),
                reason: Some(reason.to_string()),
                status: Some("Failure".to_string()),
                ..Status::default()
            }),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(&self.status).unwrap_or_default())
    }
}

fn lease_details(name: &str) -> Option<StatusDetails> {
    Some(StatusDetails {
        name: (!name.is_empty()).then(|| name.to_string()),
        group: Some(GROUP.to_string()),
        kind: Some(RESOURCE.to_string()),
        ..StatusDetails::default()
    })
}

/// `leases.coordination.k8s.io "x"` or, without a name, `leases.coordination.k8s.io`.
fn qualified(name: &str) -> String {
    if name.is_empty() {
        format!("{RESOURCE}.{GROUP}")
    } else {
        format!("{RESOURCE}.{GROUP} \"{name}\"")
    }
}

/// 404 NotFound for a Lease.
pub fn not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{} not found", qualified(name)),
        lease_details(name),
    )
}

/// 409 AlreadyExists for a create of an existing Lease.
pub fn already_exists(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "AlreadyExists",
        format!("{} already exists", qualified(name)),
        lease_details(name),
    )
}

/// 409 Conflict for an update whose resourceVersion is not the stored one.
pub fn conflict(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {}: the object has been modified; please apply \
             your changes to the latest version and try again",
            qualified(name)
        ),
        lease_details(name),
    )
}

/// 403 Forbidden from RBAC. `name` is empty for collection requests (create, list, watch),
/// where the real server has no name in the request either.
pub fn forbidden(user: &str, verb: &str, namespace: &str, name: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "{} is forbidden: User \"{user}\" cannot {verb} resource \"{RESOURCE}\" in API group \
             \"{GROUP}\" in the namespace \"{namespace}\"",
            qualified(name)
        ),
        lease_details(name),
    )
}

/// 401 for a request without a client certificate (anonymous authentication disabled).
pub fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "Unauthorized".to_string(),
        None,
    )
}

/// 400 BadRequest: the body does not decode as a Lease, or contradicts the URL.
pub fn bad_request(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message, None)
}

/// One failed validation rule: the field path, the rejected value as Go's `%#v` prints it,
/// and the rule.
pub struct FieldError {
    /// e.g. `spec.leaseDurationSeconds`.
    pub field: String,
    /// The offending value, printed.
    pub value: String,
    /// e.g. `must be greater than 0`.
    pub detail: String,
}

/// 422 Invalid, with one cause per field error, as kube-apiserver's validation reports it.
/// `kind` is `Lease` from validation and `leases` from the generic registry, as upstream.
pub fn invalid(kind: &str, name: &str, errors: &[FieldError]) -> ApiError {
    let summary: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: Invalid value: {}: {}", e.field, e.value, e.detail))
        .collect();
    let summary = if summary.len() == 1 {
        summary.join("")
    } else {
        format!("[{}]", summary.join(", "))
    };
    let causes = errors
        .iter()
        .map(|e| StatusCause {
            field: Some(e.field.clone()),
            message: Some(format!("Invalid value: {}: {}", e.value, e.detail)),
            reason: Some("FieldValueInvalid".to_string()),
        })
        .collect();
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("{kind}.{GROUP} \"{name}\" is invalid: {summary}"),
        Some(StatusDetails {
            name: Some(name.to_string()),
            group: Some(GROUP.to_string()),
            kind: Some(kind.to_string()),
            causes: Some(causes),
            ..StatusDetails::default()
        }),
    )
}

/// 410 Expired: a watch asked for history the server no longer keeps.
pub fn expired(requested: u64, oldest: u64) -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "Expired",
        format!("too old resource version: {requested} ({oldest})"),
        None,
    )
}

/// 404 for a path this endpoint does not serve.
pub fn path_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource".to_string(),
        Some(StatusDetails::default()),
    )
}

/// 405 for a verb the Lease endpoint does not implement (e.g. PATCH).
pub fn method_not_allowed(method: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("the server does not allow this method on the requested resource ({method})"),
        Some(StatusDetails::default()),
    )
}

/// 503 while the endpoint drops a connection (outage or shutdown).
pub fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "the lease endpoint is in an outage or shutting down".to_string(),
        None,
    )
}

/// The `Status` Success a DELETE of a Lease answers with.
pub fn deleted(name: &str, uid: Option<&str>) -> Status {
    Status {
        status: Some("Success".to_string()),
        details: Some(StatusDetails {
            name: Some(name.to_string()),
            group: Some(GROUP.to_string()),
            kind: Some(RESOURCE.to_string()),
            uid: uid.map(str::to_string),
            ..StatusDetails::default()
        }),
        ..Status::default()
    }
}
