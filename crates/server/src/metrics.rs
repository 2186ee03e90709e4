//! Prometheus metrics: the process-wide recorder and the per-route
//! request-latency middleware.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// Sizes of the embedded store's commit log records, in bytes.
const RECORD_BUCKETS: &[f64] =
    &[512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 65536.0, 262_144.0, 1_048_576.0, 4_194_304.0];

/// Installs the global Prometheus recorder (once per process) and returns
/// its handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("ctxmesh_commit_batch_size".into()),
                    BATCH_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("ctxmesh_commit_log_record_bytes".into()),
                    RECORD_BUCKETS,
                )
            })
            .expect("histogram buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed already (embedding
        // applications); then our handle renders only what we record here.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Renders every metric, refreshing the gauges that are read on demand.
pub fn render() -> String {
    if let Some(bytes) = heap_in_use_bytes() {
        metrics::gauge!("ctxmesh_heap_in_use_bytes").set(bytes as f64);
    }
    install().render()
}

/// Bytes of heap in use (allocated and not freed), from jemalloc, which
/// serves every allocation of the process: Rust's and SQLite's.
#[cfg(not(target_env = "msvc"))]
pub fn heap_in_use_bytes() -> Option<u64> {
    // Linking the allocator makes it the process's `malloc`, whether or
    // not the binary also names it as Rust's global allocator.
    use tikv_jemallocator as _;
    // Its counters are refreshed when the epoch advances.
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    tikv_jemalloc_ctl::stats::allocated::read().ok().map(|bytes| bytes as u64)
}

/// Bytes of heap in use: not known on this platform.
#[cfg(target_env = "msvc")]
pub fn heap_in_use_bytes() -> Option<u64> {
    None
}

/// Records `ctxmesh_http_request_duration_seconds{method, route, status}`.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let labels = [("method", method), ("route", route), ("status", response.status().as_u16().to_string())];
    metrics::histogram!("ctxmesh_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}
