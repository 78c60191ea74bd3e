//! Watch streams: newline-delimited JSON events, as kube-apiserver sends them.
//!
//! What kvip's followers rely on, and so what this reproduces: events strictly after the
//! requested resourceVersion; `ERROR` with a 410 Expired `Status` (inside a 200 stream, as the
//! real server does) when that version is older than the retained history; streams that *end*
//! after `timeoutSeconds` (capped by the server) so clients must re-establish them; bookmarks
//! when asked; and streams that die with the connection in an outage or on shutdown.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use k8s_openapi::api::coordination::v1::Lease;
use kube::core::{TypeMeta, watch::Bookmark, watch::BookmarkMeta};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use super::pki::Identity;
use super::routes::Query;
use super::serve::{Body, Shared};
use super::status::{self, ApiError};
use super::store::{Event, WatchStart};

/// One line of a watch stream.
#[derive(Serialize)]
struct WireEvent<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: &'a T,
}

fn line<T: Serialize>(kind: &str, object: &T) -> Bytes {
    let mut bytes = serde_json::to_vec(&WireEvent { kind, object }).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn bookmark(revision: u64, initial_events_end: bool) -> Bytes {
    let mut annotations = BTreeMap::new();
    if initial_events_end {
        annotations.insert("k8s.io/initial-events-end".to_string(), "true".to_string());
    }
    let object = Bookmark {
        types: TypeMeta {
            api_version: "coordination.k8s.io/v1".to_string(),
            kind: "Lease".to_string(),
        },
        metadata: BookmarkMeta {
            resource_version: revision.to_string(),
            annotations,
        },
    };
    line("BOOKMARK", &object)
}

fn error_line(api_error: &ApiError) -> Bytes {
    line("ERROR", &*api_error.status)
}

/// Everything a running watch needs to know about its request.
struct Watch {
    shared: Arc<Shared>,
    identity: Identity,
    namespace: Option<String>,
    name: Option<String>,
    allow_bookmarks: bool,
    send_initial_events: bool,
    timeout: Duration,
}

/// Starts a watch for `identity` and returns the streaming response.
pub fn respond(
    shared: Arc<Shared>,
    identity: Identity,
    namespace: Option<String>,
    query: Query,
) -> Response<Body> {
    let asked = query
        .timeout_seconds
        .map_or(shared.limits.watch_timeout_cap, Duration::from_secs);
    let watch = Watch {
        timeout: asked.min(shared.limits.watch_timeout_cap),
        shared,
        identity,
        namespace,
        name: query.name,
        allow_bookmarks: query.allow_bookmarks,
        send_initial_events: query.send_initial_events,
    };
    let start = match query.resource_version.as_deref() {
        None | Some("") | Some("0") => Ok(WatchStart::Now),
        Some(text) => text.parse().map(WatchStart::After).map_err(|_| {
            status::bad_request(format!("invalid resource version {text:?} for a watch"))
        }),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        match start {
            Ok(start) => watch.run(start, tx).await,
            Err(api_error) => {
                let _ = tx.send(error_line(&api_error)).await;
            }
        }
    });
    let frames = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

impl Watch {
    /// Sends `bytes` unless the client went away; holds it while the identity is in a `Hang`
    /// outage. False = stop the watch.
    async fn send(&self, tx: &mpsc::Sender<Bytes>, bytes: Bytes) -> bool {
        self.shared.pass_outage(Some(&self.identity)).await && tx.send(bytes).await.is_ok()
    }

    fn wants(&self, event: &Event) -> bool {
        event.matches(self.namespace.as_deref(), self.name.as_deref())
    }

    async fn run(self, start: WatchStart, tx: mpsc::Sender<Bytes>) {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let feed =
            match self
                .shared
                .store
                .watch(self.namespace.as_deref(), self.name.as_deref(), start)
            {
                Ok(feed) => feed,
                Err(expired) => {
                    let _ = self.send(&tx, error_line(&expired)).await;
                    return;
                }
            };
        let mut after = match start {
            WatchStart::After(from) => from,
            WatchStart::Now => 0,
        };
        for event in &feed.backlog {
            after = after.max(event.revision);
            if !self
                .send(&tx, line(event.kind.as_str(), &event.object))
                .await
            {
                return;
            }
        }
        if matches!(start, WatchStart::Now) {
            after = after.max(feed.revision);
        }
        if self.send_initial_events
            && self.allow_bookmarks
            && !self.send(&tx, bookmark(after, true)).await
        {
            return;
        }
        let mut live = feed.live;
        let mut bookmarks = tokio::time::interval_at(
            tokio::time::Instant::now() + self.shared.limits.bookmark_interval,
            self.shared.limits.bookmark_interval,
        );
        let mut shutdown = self.shared.shutdown.subscribe();
        loop {
            let next = tokio::select! {
                received = live.recv() => Some(received),
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tx.closed() => return,
                down = shutdown.wait_for(|down| *down) => { drop(down); return }
                _ = bookmarks.tick(), if self.allow_bookmarks => None,
            };
            let Some(next) = next else {
                let revision = self.shared.store.revision().max(after);
                if !self.send(&tx, bookmark(revision, false)).await {
                    return;
                }
                continue;
            };
            match next {
                Ok(event) if event.revision > after && self.wants(&event) => {
                    after = event.revision;
                    let object: &Lease = &event.object;
                    if !self.send(&tx, line(event.kind.as_str(), object)).await {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // This watcher fell behind the retained feed: like the real watch cache,
                    // tell it to start over from a fresh list.
                    let _ = self
                        .send(&tx, error_line(&status::expired(after, after + 1)))
                        .await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
