//! The operations surface every service exposes: `/health` (the process is alive), `/ready`
//! (every dependency answers, so traffic may be sent) and `/metrics` (Prometheus text format).
//!
//! Readiness is computed on each request by running the registered checks concurrently with a
//! short timeout, so a stopped dependency shows as not ready within one probe, and a recovered
//! one as ready again without restarting the service.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio_util::sync::CancellationToken;

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Check = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// Named readiness checks, shared between a service's tasks and its ops endpoints.
#[derive(Clone)]
pub struct Readiness {
    service: &'static str,
    checks: Arc<RwLock<BTreeMap<String, Check>>>,
    timeout: Duration,
    /// When the checks last ran (by `/ready` or a scrape): a scrape right after a probe
    /// reuses that outcome instead of probing every dependency again.
    last_evaluated: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// How recent an evaluation a `/metrics` scrape reuses.
const SCRAPE_REUSES: Duration = Duration::from_secs(5);

impl Readiness {
    /// An empty set of checks for `service` (ready until a check is added).
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            checks: Arc::default(),
            timeout: Duration::from_secs(2),
            last_evaluated: Arc::default(),
        }
    }

    /// Register (or replace) a check; it runs on every `/ready` request.
    pub fn add_check<F, Fut>(&self, name: impl Into<String>, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let boxed: Check = Arc::new(move || Box::pin(check()));
        self.checks
            .write()
            .expect("readiness lock poisoned")
            .insert(name.into(), boxed);
    }

    /// Run every check; returns whether all passed and each check's outcome.
    pub async fn evaluate(&self) -> (bool, BTreeMap<String, String>) {
        let checks: Vec<(String, Check)> = self
            .checks
            .read()
            .expect("readiness lock poisoned")
            .iter()
            .map(|(name, check)| (name.clone(), check.clone()))
            .collect();
        let timeout = self.timeout;
        let outcomes =
            futures::future::join_all(checks.into_iter().map(|(name, check)| async move {
                let outcome = match tokio::time::timeout(timeout, check()).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(reason)) => Err(reason),
                    Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
                };
                (name, outcome)
            }))
            .await;
        let all_ready = outcomes.iter().all(|(_, outcome)| outcome.is_ok());
        let gauges = readiness_metrics();
        gauges
            .ready
            .with_label_values(&[self.service])
            .set(i64::from(all_ready));
        for (check, outcome) in &outcomes {
            gauges
                .check_ready
                .with_label_values(&[self.service, check.as_str()])
                .set(i64::from(outcome.is_ok()));
        }
        *self.last_evaluated.lock().expect("readiness lock poisoned") =
            Some(std::time::Instant::now());
        let report = outcomes
            .into_iter()
            .map(|(name, outcome)| (name, outcome.err().unwrap_or_else(|| "ok".to_string())))
            .collect();
        (all_ready, report)
    }

    /// Whether the checks ran within `age`.
    fn evaluated_within(&self, age: Duration) -> bool {
        self.last_evaluated
            .lock()
            .expect("readiness lock poisoned")
            .is_some_and(|at| at.elapsed() < age)
    }
}

/// Routes for `/health`, `/ready` and `/metrics`; merge them into a service's own router, or
/// serve them alone with [`OpsServer::serve`].
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(readiness)
}

async fn health(State(readiness): State<Readiness>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "service": readiness.service }))
}

async fn ready(State(readiness): State<Readiness>) -> Response {
    let (all_ready, checks) = readiness.evaluate().await;
    let status = if all_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if all_ready { "ready" } else { "not ready" },
        "service": readiness.service,
        "checks": checks,
    });
    (status, Json(body)).into_response()
}

/// `caas_service_ready{service}` and `caas_service_check_ready{service, check}`: 1 when ready,
/// 0 when not, set by every evaluation of the checks (a `/ready` probe, or a scrape when no
/// probe ran in the last [`SCRAPE_REUSES`]) so an alert sees a service that runs but cannot work
/// (Prometheus' own `up` only says that `/metrics` answered).
struct ReadinessMetrics {
    ready: prometheus::IntGaugeVec,
    check_ready: prometheus::IntGaugeVec,
}

fn readiness_metrics() -> &'static ReadinessMetrics {
    static METRICS: std::sync::LazyLock<ReadinessMetrics> =
        std::sync::LazyLock::new(|| ReadinessMetrics {
            ready: prometheus::register_int_gauge_vec!(
                "caas_service_ready",
                "1 when every readiness check of the service passes (what /ready answers), else 0.",
                &["service"]
            )
            .expect("register caas_service_ready"),
            check_ready: prometheus::register_int_gauge_vec!(
                "caas_service_check_ready",
                "1 when this readiness check (a dependency) passes, else 0.",
                &["service", "check"]
            )
            .expect("register caas_service_check_ready"),
        });
    &METRICS
}

async fn metrics(State(readiness): State<Readiness>) -> Response {
    if !readiness.evaluated_within(SCRAPE_REUSES) {
        readiness.evaluate().await;
    }
    let encoder = prometheus::TextEncoder::new();
    match encoder.encode_to_string(&prometheus::gather()) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {error}"),
        )
            .into_response(),
    }
}

/// A stand-alone ops server for workers that serve no other HTTP.
pub struct OpsServer;

impl OpsServer {
    /// Bind `address` and serve `router` until `shutdown` is cancelled. Returns the bound
    /// address (useful with port 0 in tests) and the server task.
    pub async fn serve(
        address: SocketAddr,
        router: Router,
        shutdown: CancellationToken,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let bound = listener.local_addr()?;
        tracing::info!(address = %bound, "http server listening");
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
        });
        Ok((bound, task))
    }
}

/// Serve only the ops endpoints, with one readiness check per dependency, until `shutdown` is
/// cancelled. The shape of a worker that has no HTTP API of its own.
pub async fn serve_until_shutdown(
    service: &'static str,
    common: &crate::CommonConfig,
    address: SocketAddr,
    dependencies: &[crate::probe::Part],
    shutdown: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let readiness = Readiness::new(service);
    crate::probe::register_checks(&readiness, common, dependencies);
    let (bound, server) = OpsServer::serve(address, router(readiness), shutdown.clone()).await?;
    on_bound(bound);
    tracing::info!(service, address = %bound, "service started");
    shutdown.cancelled().await;
    server
        .await
        .map_err(|error| std::io::Error::other(error.to_string()))??;
    tracing::info!(service, "service stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tower::ServiceExt;

    async fn get_status(app: Router, path: &str) -> (StatusCode, String) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).to_string())
    }

    #[tokio::test]
    async fn ready_follows_its_checks() {
        let readiness = Readiness::new("test");
        let up = Arc::new(AtomicBool::new(false));
        let flag = up.clone();
        readiness.add_check("kafka", move || {
            let flag = flag.clone();
            async move {
                if flag.load(Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err("broker unreachable".to_string())
                }
            }
        });
        let (status, body) = get_status(router(readiness.clone()), "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("broker unreachable"), "{body}");
        up.store(true, Ordering::SeqCst);
        let (status, _) = get_status(router(readiness), "/ready").await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_hanging_check_is_not_ready() {
        let mut readiness = Readiness::new("test");
        readiness.timeout = Duration::from_millis(50);
        readiness.add_check("stuck", || async {
            futures::future::pending::<()>().await;
            Ok(())
        });
        let (status, body) = get_status(router(readiness), "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("no answer"), "{body}");
    }

    #[tokio::test]
    async fn health_and_metrics_answer() {
        let counter = prometheus::register_int_counter!(
            "caas_runtime_test_events_total",
            "a counter for the metrics endpoint test"
        )
        .unwrap();
        counter.inc();
        let (status, body) = get_status(router(Readiness::new("test")), "/health").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("\"ok\""));
        let (status, body) = get_status(router(Readiness::new("test")), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("caas_runtime_test_events_total 1"), "{body}");
    }

    #[tokio::test]
    async fn metrics_report_readiness_per_service_and_check() {
        let readiness = Readiness::new("metrics-readiness-test");
        readiness.add_check("redis", || async { Err("connection refused".to_string()) });
        readiness.add_check("kafka", || async { Ok(()) });
        let (status, body) = get_status(router(readiness), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains(r#"caas_service_ready{service="metrics-readiness-test"} 0"#),
            "{body}"
        );
        assert!(
            body.contains(
                r#"caas_service_check_ready{check="redis",service="metrics-readiness-test"} 0"#
            ),
            "{body}"
        );
        assert!(
            body.contains(
                r#"caas_service_check_ready{check="kafka",service="metrics-readiness-test"} 1"#
            ),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_scrape_right_after_a_probe_reuses_its_outcome() {
        let readiness = Readiness::new("metrics-reuse-test");
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        readiness.add_check("kafka", move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Err("down".to_string()) }
        });
        let app = router(readiness);
        let (status, _) = get_status(app.clone(), "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let (_, body) = get_status(app, "/metrics").await;
        assert!(
            body.contains(
                r#"caas_service_check_ready{check="kafka",service="metrics-reuse-test"} 0"#
            ),
            "{body}"
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
