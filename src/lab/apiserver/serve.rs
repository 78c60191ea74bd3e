//! The transport: TLS with optional client certificates, HTTP/1.1 and HTTP/2, and outages.
//!
//! Authentication happens here: once per connection from the verified peer certificate (as
//! kube-apiserver's x509 authenticator does), and per request from a bearer token when there is
//! no certificate (see [`super::tokens`]). Outages act here too, because a real outage is a
//! transport event: the connection dies or goes silent, the client gets no HTTP answer.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::access::{Grants, OutageMode, Outages};
use super::pki::{Identity, identity_of};
use super::store::Store;
use super::tokens::{Caller, Tokens};

/// The response body type: whole JSON documents, or a watch stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Tunables that shape how the endpoint behaves towards clients.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The longest a watch stream stays open, whatever `timeoutSeconds` asks.
    pub watch_timeout_cap: Duration,
    /// How often a watch that allows bookmarks gets one.
    pub bookmark_interval: Duration,
}

/// Everything the connections share. One owner per concern: the store owns Leases, `grants`
/// owns authorization, `outages` owns reachability.
pub struct Shared {
    /// The Leases.
    pub store: Store,
    /// RBAC grants.
    pub grants: Grants,
    /// Bearer tokens (ServiceAccount tokens) and the identities they stand for.
    pub tokens: Tokens,
    /// Current outages; connections and watches subscribe to changes.
    pub outages: watch::Sender<Outages>,
    /// Becomes true once, on shutdown.
    pub shutdown: watch::Sender<bool>,
    /// Requests seen per user ("" = no certificate), including refused ones.
    pub requests: Mutex<HashMap<String, u64>>,
    /// See [`Limits`].
    pub limits: Limits,
}

impl Shared {
    /// Waits while `identity` is in a `Hang` outage; returns false if, instead, the connection
    /// should die (a `Drop` outage began or the server is shutting down).
    pub async fn pass_outage(&self, identity: Option<&Identity>) -> bool {
        let mut outages = self.outages.subscribe();
        let mut shutdown = self.shutdown.subscribe();
        loop {
            if *shutdown.borrow_and_update() {
                return false;
            }
            match outages.borrow_and_update().mode_for(identity) {
                None => return true,
                Some(OutageMode::Drop) => return false,
                Some(OutageMode::Hang) => {}
            }
            tokio::select! {
                changed = outages.changed() => if changed.is_err() { return false },
                changed = shutdown.changed() => if changed.is_err() { return false },
            }
        }
    }

    fn count(&self, identity: Option<&Identity>) {
        let user = identity.map(|i| i.user.clone()).unwrap_or_default();
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *requests.entry(user).or_default() += 1;
    }
}

/// Accepts connections until shutdown. Each connection gets its own task.
pub async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|down| *down) => return,
        };
        match accepted {
            Ok((tcp, _peer)) => {
                tokio::spawn(connection(tcp, acceptor.clone(), shared.clone()));
            }
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "lease endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(tcp: TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::debug!(%error, "lease endpoint: TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let certificate: Option<Identity> = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(identity_of);
    let mut outages = shared.outages.subscribe();
    let mut shutdown = shared.shutdown.subscribe();
    if outages.borrow_and_update().mode_for(certificate.as_ref()) == Some(OutageMode::Drop) {
        return;
    }
    // Token identities are only known per request: the ones seen on this connection, so that a
    // `Drop` outage for them drops the connection as it does for a certificate identity.
    let (seen_tx, mut seen) = watch::channel(Vec::<Identity>::new());
    let service = {
        let shared = shared.clone();
        let certificate = certificate.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let shared = shared.clone();
            let caller = shared
                .tokens
                .authenticate(certificate.as_ref(), request.headers());
            if let Caller::Authenticated {
                identity,
                by_token: true,
            } = &caller
            {
                seen_tx.send_if_modified(|seen| {
                    let new = !seen.contains(identity);
                    if new {
                        seen.push(identity.clone());
                    }
                    new
                });
            }
            async move {
                let identity = caller.identity().cloned();
                if !shared.pass_outage(identity.as_ref()).await {
                    // The connection is being dropped (outage or shutdown) and the connection
                    // task's biased select makes sure this answer never reaches the client;
                    // returning (rather than pending) lets HTTP/2 stream tasks finish.
                    return Ok(super::routes::unavailable());
                }
                shared.count(identity.as_ref());
                if caller == Caller::BadToken {
                    return Ok(super::routes::unauthorized());
                }
                Ok::<_, Infallible>(super::routes::handle(shared, identity, request).await)
            }
        })
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    let serving = builder.serve_connection(TokioIo::new(tls), service);
    let dropped = async {
        loop {
            let drop_now = {
                let outages = outages.borrow_and_update();
                let seen = seen.borrow_and_update();
                std::iter::once(certificate.as_ref())
                    .chain(seen.iter().map(Some))
                    .any(|id| outages.mode_for(id) == Some(OutageMode::Drop))
            };
            if drop_now {
                return;
            }
            tokio::select! {
                changed = outages.changed() => if changed.is_err() { return },
                // The service (and its sender) lives as long as the connection.
                changed = seen.changed() => if changed.is_err() { std::future::pending::<()>().await },
            }
        }
    };
    tokio::select! {
        // Dropping must win over a response that became ready at the same moment.
        biased;
        _ = dropped => {}
        _ = shutdown.wait_for(|down| *down) => {}
        _ = serving => {}
    }
}

/// A whole JSON response.
pub fn json(code: hyper::StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(http_body_util::Full::new(body).boxed_unsync());
    *response.status_mut() = code;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A plain-text response (health endpoints).
pub fn text(body: &'static str) -> Response<Body> {
    let mut response = Response::new(
        http_body_util::Full::new(Bytes::from_static(body.as_bytes())).boxed_unsync(),
    );
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
