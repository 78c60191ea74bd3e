//! `/healthz`, `/readyz` and `/metrics` over plain HTTP.
//!
//! `/healthz` answers kubelet's liveness probe: it fails only when the daemon's supervisor has
//! stopped turning (a wedged runtime is worth a restart; an unreachable API server is not, since a
//! restart cannot fix it). `/readyz` says whether kvip can do its job right now: it reaches the
//! API server with a usable credential.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use super::Metrics;

/// How long the supervisor may go without a heartbeat before `/healthz` fails. The supervisor
/// beats every second; kubelet probes every 10 s and restarts after 3 failures.
pub const STALE_AFTER: Duration = Duration::from_secs(15);

/// Liveness and readiness, written by the supervisor and read by the HTTP handlers.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    /// Milliseconds since `started` of the supervisor's last heartbeat.
    heartbeat_ms: AtomicU64,
    /// `None` when the API server was reached with a usable credential; else why not.
    not_ready: Mutex<Option<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            started: Instant::now(),
            heartbeat_ms: AtomicU64::new(0),
            not_ready: Mutex::new(Some("not connected to the API server yet".into())),
        }
    }
}

impl Health {
    /// Records that the supervisor's loop is turning.
    pub fn beat(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heartbeat_ms.store(ms, Ordering::Relaxed);
    }

    /// Records whether the API server is reachable with a usable credential.
    pub fn set_ready(&self, result: Result<(), String>) {
        if let Ok(mut slot) = self.not_ready.lock() {
            *slot = result.err();
        }
    }

    fn live(&self) -> Result<(), String> {
        let beat = Duration::from_millis(self.heartbeat_ms.load(Ordering::Relaxed));
        let silent = self.started.elapsed().saturating_sub(beat);
        if silent > STALE_AFTER {
            return Err(format!(
                "the supervisor has not turned for {}s",
                silent.as_secs()
            ));
        }
        Ok(())
    }

    fn ready(&self) -> Result<(), String> {
        self.live()?;
        match self.not_ready.lock() {
            Ok(slot) => slot.clone().map_or(Ok(()), Err),
            Err(_) => Err("health state poisoned".into()),
        }
    }
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    metrics: Metrics,
}

fn answer(result: Result<(), String>) -> (StatusCode, String) {
    match result {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

/// Binds every listener now (so a taken port is a startup error, before the host is touched)
/// and returns the bound addresses and a future that serves them until dropped.
pub async fn serve(
    listeners: &[SocketAddr],
    health: Arc<Health>,
    metrics: Metrics,
) -> anyhow::Result<(Vec<SocketAddr>, impl Future<Output = ()> + Send + 'static)> {
    let app = Router::new()
        .route(
            "/healthz",
            get(|State(s): State<AppState>| async move { answer(s.health.live()) }),
        )
        .route(
            "/livez",
            get(|State(s): State<AppState>| async move { answer(s.health.live()) }),
        )
        .route(
            "/readyz",
            get(|State(s): State<AppState>| async move { answer(s.health.ready()) }),
        )
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move {
                let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
                ([(header::CONTENT_TYPE, content_type)], s.metrics.encode()).into_response()
            }),
        )
        .with_state(AppState { health, metrics });
    let mut servers = Vec::new();
    let mut bound = Vec::new();
    for addr in listeners {
        let listener = bind(*addr).await.with_context(|| {
            format!("cannot listen on {addr} for /healthz and /metrics (is another kvip or kube-vip running? change --prometheusHTTPServer/--health-address)")
        })?;
        bound.push(listener.local_addr()?);
        let app = app.clone();
        servers.push(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::warn!(%err, "HTTP server stopped");
            }
        });
    }
    Ok((bound, async move {
        futures::future::join_all(servers).await;
    }))
}

/// Binds `addr`; `[::]` (Go's `:port`) falls back to `0.0.0.0` on hosts without IPv6.
async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Err(err) if addr.ip() == std::net::Ipv6Addr::UNSPECIFIED => {
            let v4 = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port());
            TcpListener::bind(v4).await.map_err(|_| err)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn probes_follow_the_supervisor_and_the_api() {
        let health = Arc::new(Health::default());
        let metrics = Metrics::new("cp-1", "kube-system", "plndr-cp-lock");
        let (bound, server) = serve(&["127.0.0.1:0".parse().unwrap()], health.clone(), metrics)
            .await
            .unwrap();
        tokio::spawn(server);
        let addr = bound[0];
        health.beat();
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        let not_ready = get(addr, "/readyz").await;
        assert!(
            not_ready.starts_with("HTTP/1.1 503") && not_ready.contains("not connected"),
            "{not_ready}"
        );
        health.set_ready(Ok(()));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        health.set_ready(Err("admin.conf: 403 Forbidden".into()));
        assert!(get(addr, "/readyz").await.contains("403 Forbidden"));
        let metrics = get(addr, "/metrics").await;
        assert!(
            metrics.contains("kvip_is_leader") && metrics.contains("# EOF"),
            "{metrics}"
        );
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
    }

    #[test]
    fn a_silent_supervisor_fails_liveness() {
        let health = Health {
            started: Instant::now() - STALE_AFTER * 2,
            ..Health::default()
        };
        assert!(
            health.live().is_err(),
            "no beat since long before STALE_AFTER"
        );
        health.beat();
        assert!(health.live().is_ok());
    }
}
