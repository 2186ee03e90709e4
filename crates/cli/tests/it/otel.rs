//! Traces: `ctxmesh serve --otlp-endpoint` exports its spans by OTLP over
//! HTTP to a receiver the test runs; a request's span continues the
//! client's W3C trace context, and the store's and the package's spans are
//! its children.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

use crate::ServerProcess;

/// A span as received, with the service that sent it.
#[derive(Clone, Debug)]
struct Received {
    span: Span,
    service: String,
}

impl Received {
    fn attribute(&self, key: &str) -> Option<Any> {
        self.span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.clone()).and_then(|v| v.value)
    }

    fn string(&self, key: &str) -> Option<String> {
        match self.attribute(key) {
            Some(Any::StringValue(s)) => Some(s),
            _ => None,
        }
    }

    fn int(&self, key: &str) -> Option<i64> {
        match self.attribute(key) {
            Some(Any::IntValue(i)) => Some(i),
            _ => None,
        }
    }
}

/// An OTLP/HTTP (protobuf) trace receiver on 127.0.0.1.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = spans.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let kept = kept.clone();
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let kept = kept.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let status = match (path.as_str(), ExportTraceServiceRequest::decode(body)) {
                            ("/v1/traces", Ok(export)) => {
                                let mut kept = kept.lock().unwrap();
                                for resource in export.resource_spans {
                                    let service = resource
                                        .resource
                                        .iter()
                                        .flat_map(|r| r.attributes.iter())
                                        .find(|a| a.key == "service.name")
                                        .and_then(|a| a.value.clone()?.value)
                                        .map(|v| match v {
                                            Any::StringValue(s) => s,
                                            other => format!("{other:?}"),
                                        })
                                        .unwrap_or_default();
                                    for scope in resource.scope_spans {
                                        for span in scope.spans {
                                            kept.push(Received { span, service: service.clone() });
                                        }
                                    }
                                }
                                200
                            }
                            _ => 400,
                        };
                        let answer = ExportTraceServiceResponse::default().encode_to_vec();
                        let answer = hyper::Response::builder()
                            .status(status)
                            .header("content-type", "application/x-protobuf")
                            .body(Full::new(Bytes::from(answer)))
                            .expect("a response");
                        Ok::<_, std::convert::Infallible>(answer)
                    }
                });
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        Receiver { url, spans }
    }

    /// Waits (at most a minute) for a span that `wanted` picks.
    async fn wait_for(&self, what: &str, wanted: impl Fn(&Received) -> bool) -> Received {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(found) = self.spans.lock().unwrap().iter().find(|s| wanted(s)) {
                return found.clone();
            }
            assert!(Instant::now() < deadline, "no {what} arrived; received: {:#?}", self.names());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn names(&self) -> Vec<String> {
        self.spans.lock().unwrap().iter().map(|s| s.span.name.clone()).collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_is_traced_under_the_clients_trace_with_the_store_span_as_its_child() {
    // reqwest is built without a TLS crypto provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with(
        dir.path(),
        &["--otlp-endpoint", &receiver.url],
        &[
            ("CTXMESH_NO_SAVE_CREDENTIALS", "1"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "ctxmesh-under-test"),
        ],
    );
    let http = reqwest::Client::new();
    let base = &server.base;
    let status = |r: reqwest::Response| r.status().as_u16();
    let created = http
        .post(format!("{base}/v1/contexts"))
        .header("x-agent-id", "alice")
        .json(&json!({"id": "traced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(created), 201);

    // The client's trace context, as an SDK with an active span sends it.
    let (trace_id, client_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let put = http
        .put(format!("{base}/v1/contexts/traced/entries/notes/plan"))
        .header("x-agent-id", "alice")
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .header("tracestate", "vendor=x")
        .json(&json!({"value": {"step": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(put), 201);

    let route = "PUT /v1/contexts/{ctx}/entries/{*key}";
    let request = receiver.wait_for("request span", |s| s.span.name == route).await;
    assert_eq!(hex(&request.span.trace_id), trace_id, "the request continues the client's trace");
    assert_eq!(hex(&request.span.parent_span_id), client_span, "the client's span is the request's parent");
    assert_eq!(request.span.trace_state, "vendor=x");
    assert_eq!(request.span.kind, opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32);
    assert_eq!(request.string("http.request.method").as_deref(), Some("PUT"));
    assert_eq!(request.string("http.route").as_deref(), Some("/v1/contexts/{ctx}/entries/{*key}"));
    assert_eq!(request.string("url.path").as_deref(), Some("/v1/contexts/traced/entries/notes/plan"));
    assert_eq!(request.int("http.response.status_code"), Some(201), "{:?}", request.span.attributes);
    assert_eq!(request.string("ctxmesh.context").as_deref(), Some("traced"));
    assert_eq!(request.string("ctxmesh.agent").as_deref(), Some("alice"));
    assert_eq!(request.service, "ctxmesh-under-test");

    // The store's write is a child of the request's span, in its trace;
    // the wait for durability is inside it.
    let write = receiver
        .wait_for("store.write span", |s| s.span.name == "store.write" && s.span.trace_id == request.span.trace_id)
        .await;
    assert_eq!(write.span.parent_span_id, request.span.span_id, "store.write is a child of the request span");
    assert_eq!(write.string("db.system.name").as_deref(), Some("sqlite"));
    assert!(write.int("ctxmesh.store.batch_size").is_some_and(|n| n >= 1), "{write:?}");
    let wait = receiver
        .wait_for("store.durability_wait span", |s| {
            s.span.name == "store.durability_wait" && s.span.trace_id == request.span.trace_id
        })
        .await;
    assert_eq!(wait.span.parent_span_id, write.span.span_id);

    // A request without a trace context starts a trace of its own.
    let read = http
        .get(format!("{base}/v1/contexts/traced/entries/notes/plan"))
        .header("x-agent-id", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(status(read), 200);
    let read = receiver.wait_for("read span", |s| s.span.name == "GET /v1/contexts/{ctx}/entries/{*key}").await;
    assert!(read.span.parent_span_id.is_empty(), "{read:?}");
    assert_ne!(read.span.trace_id, request.span.trace_id);
    assert_eq!(read.span.trace_id.len(), 16);
    assert_eq!(read.int("http.response.status_code"), Some(200));

    // A package: its span, with the counts, inside the request's.
    let registered = http
        .post(format!("{base}/v1/agents"))
        .header("x-agent-id", "alice")
        .json(&json!({"id": "alice", "needs": {"keys": ["**"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(registered), 201);
    let package = http
        .get(format!("{base}/v1/contexts/traced/package?budget=2000"))
        .header("x-agent-id", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(status(package), 200);
    let request = receiver.wait_for("package request span", |s| s.span.name == "GET /v1/contexts/{ctx}/package").await;
    let package = receiver
        .wait_for("mesh.package span", |s| s.span.name == "mesh.package" && s.span.trace_id == request.span.trace_id)
        .await;
    assert_eq!(package.span.parent_span_id, request.span.span_id);
    assert_eq!(package.string("ctxmesh.context").as_deref(), Some("traced"));
    assert_eq!(package.int("ctxmesh.package.entries"), Some(1), "{package:?}");
    assert!(package.int("ctxmesh.package.tokens").is_some_and(|t| t > 0), "{package:?}");
    assert_eq!(package.int("ctxmesh.package.budget"), Some(2000));
}
