//! Request routing: the URL layout, authentication and authorization checks, and the Lease verbs.
//!
//! The order of checks is kube-apiserver's: authentication (no certificate or token → 401), then
//! authorization on the verb, namespace and URL name (→ 403 with RBAC's message), then decoding
//! and validation (→ 400 / 422), then storage (→ 404 / 409).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;

use super::pki::Identity;
use super::serve::{Body, Shared, json, text};
use super::status::{self, ApiError};
use super::validate::{self, Target};
use super::watch;

/// kube-apiserver's default request body limit (3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

const LEASES_PREFIX: &str = "/apis/coordination.k8s.io/v1/";

/// What a Lease URL names.
struct LeaseUrl {
    /// None for the cluster-wide collection.
    namespace: Option<String>,
    /// None for a collection.
    name: Option<String>,
}

fn parse_lease_url(path: &str) -> Option<LeaseUrl> {
    let rest = path.strip_prefix(LEASES_PREFIX)?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["leases"] => Some(LeaseUrl {
            namespace: None,
            name: None,
        }),
        ["namespaces", ns, "leases"] if !ns.is_empty() => Some(LeaseUrl {
            namespace: Some((*ns).to_string()),
            name: None,
        }),
        ["namespaces", ns, "leases", name] if !ns.is_empty() && !name.is_empty() => {
            Some(LeaseUrl {
                namespace: Some((*ns).to_string()),
                name: Some((*name).to_string()),
            })
        }
        _ => None,
    }
}

/// The query parameters the Lease endpoint understands.
#[derive(Default)]
pub struct Query {
    /// `watch=true|1`.
    pub watch: bool,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u64>,
    /// `allowWatchBookmarks=true`.
    pub allow_bookmarks: bool,
    /// `sendInitialEvents=true` (streaming lists).
    pub send_initial_events: bool,
    /// From `fieldSelector=metadata.name=x`.
    pub name: Option<String>,
    /// From `fieldSelector=metadata.namespace=x`.
    pub namespace: Option<String>,
}

fn parse_query(raw: Option<&str>) -> Result<Query, ApiError> {
    let mut query = Query::default();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let yes = value == "true" || value == "1";
        match key.as_ref() {
            "watch" => query.watch = yes,
            "resourceVersion" => query.resource_version = Some(value.into_owned()),
            "allowWatchBookmarks" => query.allow_bookmarks = yes,
            "sendInitialEvents" => query.send_initial_events = yes,
            "timeoutSeconds" => {
                query.timeout_seconds = Some(value.parse().map_err(|_| {
                    status::bad_request(format!("invalid timeoutSeconds {value:?}"))
                })?);
            }
            "fieldSelector" => {
                for term in value.split(',').filter(|t| !t.is_empty()) {
                    let (field, wanted) = term
                        .split_once("==")
                        .or_else(|| term.split_once('='))
                        .ok_or_else(|| {
                            status::bad_request(format!("invalid field selector {term:?}"))
                        })?;
                    match field {
                        "metadata.name" => query.name = Some(wanted.to_string()),
                        "metadata.namespace" => query.namespace = Some(wanted.to_string()),
                        other => {
                            return Err(status::bad_request(format!(
                                "field label not supported: {other}"
                            )));
                        }
                    }
                }
            }
            // labelSelector, limit, continue, resourceVersionMatch, pretty...: Leases written
            // by kvip carry no labels and lists are small, so these change nothing here.
            _ => {}
        }
    }
    Ok(query)
}

/// Answers one request from `identity` (None = neither a client certificate nor a token).
pub async fn handle(
    shared: Arc<Shared>,
    identity: Option<Identity>,
    request: Request<Incoming>,
) -> Response<Body> {
    let path = request.uri().path().to_string();
    match (request.method(), path.as_str()) {
        (&Method::GET, "/healthz" | "/livez" | "/readyz") => return text("ok"),
        (&Method::GET, "/version") => return version(),
        _ => {}
    }
    let Some(identity) = identity else {
        return error(status::unauthorized());
    };
    match lease_request(&shared, &identity, request).await {
        Ok(response) => response,
        Err(api_error) => error(api_error),
    }
}

async fn lease_request(
    shared: &Arc<Shared>,
    identity: &Identity,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let url = parse_lease_url(request.uri().path()).ok_or_else(status::path_not_found)?;
    let query = parse_query(request.uri().query())?;
    let method = request.method().clone();
    let verb = match (&method, &url.name) {
        (&Method::GET, Some(_)) => "get",
        (&Method::GET, None) if query.watch => "watch",
        (&Method::GET, None) => "list",
        (&Method::POST, None) => "create",
        (&Method::PUT, Some(_)) => "update",
        (&Method::DELETE, Some(_)) => "delete",
        (&Method::PATCH, Some(_)) => "patch",
        (other, _) => return Err(status::method_not_allowed(other.as_str())),
    };
    if !shared.grants.allows(identity) {
        let scope = url.namespace.as_deref().unwrap_or_default();
        let name = url.name.as_deref().unwrap_or_default();
        let mut refused = status::forbidden(&identity.user, verb, scope, name);
        if url.namespace.is_none() {
            refused.status.message = refused
                .status
                .message
                .map(|m| m.replace(" in the namespace \"\"", " at the cluster scope"));
        }
        return Err(refused);
    }
    let namespace = url.namespace.clone().unwrap_or_default();
    let name = url.name.clone().unwrap_or_default();
    let user = identity.user.as_str();
    match verb {
        "get" => {
            let lease = shared
                .store
                .get(&namespace, &name)
                .ok_or_else(|| status::not_found(&name))?;
            Ok(lease_response(StatusCode::OK, &lease))
        }
        "list" => {
            let namespace = url.namespace.as_deref().or(query.namespace.as_deref());
            let (items, revision) = shared.store.list(namespace, query.name.as_deref());
            let list = k8s_openapi::List::<Lease> {
                items,
                metadata: ListMeta {
                    resource_version: Some(revision.to_string()),
                    ..ListMeta::default()
                },
            };
            Ok(json(StatusCode::OK, to_json(&list)))
        }
        "watch" => Ok(watch::respond(
            shared.clone(),
            identity.clone(),
            url.namespace.or(query.namespace.clone()),
            query,
        )),
        "create" => {
            let body = read_body(request).await?;
            let target = Target {
                namespace: &namespace,
                name: None,
            };
            let lease = validate::lease_body(&body, &target)?;
            let created = shared.store.create(lease, user)?;
            Ok(lease_response(StatusCode::CREATED, &created))
        }
        "update" => {
            let body = read_body(request).await?;
            let target = Target {
                namespace: &namespace,
                name: Some(&name),
            };
            let lease = validate::lease_body(&body, &target)?;
            let (stored, created) = shared.store.update(lease, user)?;
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(lease_response(code, &stored))
        }
        "delete" => {
            // Like the generic registry for Leases: a `Status` Success, not the deleted object.
            let deleted = shared.store.delete(&namespace, &name, user)?;
            let done = status::deleted(&name, deleted.metadata.uid.as_deref());
            Ok(json(StatusCode::OK, to_json(&done)))
        }
        _ => Err(status::method_not_allowed(method.as_str())),
    }
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, ApiError> {
    Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|e| status::bad_request(format!("cannot read the request body: {e}")))
}

fn to_json<T: serde::Serialize>(value: &T) -> Bytes {
    // Serializing k8s-openapi types to a Vec cannot fail: every map key is a string.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

fn lease_response(code: StatusCode, lease: &Lease) -> Response<Body> {
    json(code, to_json(lease))
}

/// 503 for a request caught by an outage or shutdown; never seen by a client in practice,
/// because the connection is dropped first.
pub fn unavailable() -> Response<Body> {
    error(status::unavailable())
}

/// 401 for a bearer token the endpoint does not know (before any routing, as kube-apiserver's
/// authentication filter answers it).
pub fn unauthorized() -> Response<Body> {
    error(status::unauthorized())
}

fn error(api_error: ApiError) -> Response<Body> {
    json(api_error.code, api_error.body())
}

fn version() -> Response<Body> {
    let info = k8s_openapi::apimachinery::pkg::version::Info {
        major: "1".to_string(),
        minor: "33".to_string(),
        git_version: "v1.33.0-kvip-lab".to_string(),
        platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        go_version: "none (kvip in-repo Lease endpoint)".to_string(),
        ..Default::default()
    };
    json(StatusCode::OK, to_json(&info))
}
