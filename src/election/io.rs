//! The thin kube I/O around the decision core: one Lease, get / create / update / watch, each
//! bounded by the request timeout and each failure sorted into what the elector reacts to.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{PostParams, WatchEvent, WatchParams};

/// How a request failed, in the terms the elector acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// 409: someone else wrote first (update conflict or create AlreadyExists). Re-read.
    Conflict,
    /// 403: this credential may not touch the Lease; the ladder may switch rungs.
    Forbidden(String),
    /// Anything else: unreachable, timed out, 5xx… The message is for logs and status.
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Conflict => f.write_str("409 Conflict (another node wrote the Lease first)"),
            Failure::Forbidden(m) => write!(f, "403 Forbidden: {m}"),
            Failure::Other(m) => f.write_str(m),
        }
    }
}

fn classify(error: kube::Error) -> Failure {
    match error {
        kube::Error::Api(status) if status.code == 409 => Failure::Conflict,
        kube::Error::Api(status) if status.code == 403 => Failure::Forbidden(status.message),
        other => Failure::Other(other.to_string()),
    }
}

async fn bounded<T>(
    timeout: Duration,
    what: &str,
    request: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(timeout, request).await {
        Ok(result) => result.map_err(classify),
        Err(_) => Err(Failure::Other(format!(
            "{what}: no answer within {timeout:?}"
        ))),
    }
}

/// The Lease's API, with the timeout that bounds every request.
pub(crate) struct LeaseApi {
    pub(crate) api: Api<Lease>,
    pub(crate) name: String,
    pub(crate) timeout: Duration,
}

impl LeaseApi {
    /// GET; `Ok(None)` when the Lease does not exist.
    pub(crate) async fn get(&self) -> Result<Option<Lease>, Failure> {
        bounded(self.timeout, "get lease", self.api.get_opt(&self.name)).await
    }

    /// POST; AlreadyExists comes back as [`Failure::Conflict`].
    pub(crate) async fn create(&self, lease: &Lease) -> Result<Lease, Failure> {
        bounded(
            self.timeout,
            "create lease",
            self.api.create(&PostParams::default(), lease),
        )
        .await
    }

    /// PUT conditioned on `lease.metadata.resourceVersion`.
    pub(crate) async fn replace(&self, lease: &Lease) -> Result<Lease, Failure> {
        bounded(
            self.timeout,
            "update lease",
            self.api.replace(&self.name, &PostParams::default(), lease),
        )
        .await
    }
}

/// A watch on the one Lease.
pub(crate) type LeaseEvents = BoxStream<'static, Result<WatchEvent<Lease>, kube::Error>>;

/// Opens a watch on the Lease (field selector on its name) from `resource_version`, ended by the
/// server after `timeout_secs` so it is re-established regularly.
pub(crate) async fn open_watch(
    watch_api: &Api<Lease>,
    name: &str,
    resource_version: &str,
    timeout_secs: u32,
    request_timeout: Duration,
) -> Result<LeaseEvents, Failure> {
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(timeout_secs);
    let stream = bounded(
        request_timeout,
        "watch lease",
        watch_api.watch(&params, resource_version),
    )
    .await?;
    Ok(stream.boxed())
}

/// What the watch said.
pub(crate) enum WatchStep {
    /// The Lease as it now is.
    Changed(Box<Lease>),
    /// The Lease was deleted.
    Deleted,
    /// The stream ended or failed (410 Gone included): re-read and watch again.
    Ended(String),
    /// Nothing the elector cares about (bookmarks).
    Nothing,
}

/// The next step of `events`; never resolves when there is no watch.
pub(crate) async fn next_step(events: &mut Option<LeaseEvents>) -> WatchStep {
    let Some(stream) = events.as_mut() else {
        return std::future::pending().await;
    };
    match stream.next().await {
        Some(Ok(WatchEvent::Added(lease) | WatchEvent::Modified(lease))) => {
            WatchStep::Changed(Box::new(lease))
        }
        Some(Ok(WatchEvent::Deleted(_))) => WatchStep::Deleted,
        Some(Ok(WatchEvent::Bookmark(_))) => WatchStep::Nothing,
        Some(Ok(WatchEvent::Error(status))) => {
            WatchStep::Ended(format!("watch error {}: {}", status.code, status.message))
        }
        Some(Err(e)) => WatchStep::Ended(format!("watch failed: {e}")),
        None => WatchStep::Ended("watch ended".to_owned()),
    }
}
