//! ctxmesh's MCP server, built on the official Rust SDK (rmcp): tools to
//! read, list, write with preconditions, patch, search, get packages, hand
//! off, lock and read history; contexts and entries as resources, with
//! update notifications when anyone writes.
//!
//! Every tool and resource is a request of the HTTP API sent through a
//! [`Gateway`]: in the server, its own router, on behalf of the MCP
//! request's authenticated caller; over stdio, an HTTP client of a server
//! or an embedded store. So an MCP client is authorized, validated,
//! rate-limited and audited exactly like an HTTP one, and nothing here
//! knows how the API is implemented.

mod resources;
mod sse;
mod tools;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};
use http::{Request, Response, StatusCode};
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ResourceContents,
    ResourceUpdatedNotificationParam, ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter,
    UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, RoleServer, SubscriptionContext};
use serde_json::Value;

pub use resources::Resource;
pub use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
pub use tokio_util::sync::CancellationToken;

/// The streamable HTTP service of [`Mcp`].
pub type HttpService = StreamableHttpService<Mcp, LocalSessionManager>;

/// A response body, streamed (watches never end by themselves).
pub type Body = BoxStream<'static, Result<Bytes, String>>;

/// Where MCP requests go: the HTTP API.
pub trait Gateway: Send + Sync + 'static {
    /// Sends `request` (a path and query of `/v1`, headers, a body) on
    /// behalf of the caller. `caller` is the extensions of the MCP HTTP
    /// request (the server put the authenticated caller there); over stdio
    /// there is none and the gateway acts with its own credentials.
    fn send(
        &self,
        caller: Option<http::Extensions>,
        request: Request<Bytes>,
    ) -> BoxFuture<'static, Result<Response<Body>, String>>;
}

/// The MCP server. Cheap to clone: one per MCP session or request.
#[derive(Clone)]
pub struct Mcp {
    gateway: Arc<dyn Gateway>,
    /// Subscriptions made with the older `resources/subscribe` (one
    /// session's), by URI.
    legacy: Arc<Mutex<HashMap<String, tokio::task::AbortHandle>>>,
}

impl std::fmt::Debug for Mcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mcp").finish_non_exhaustive()
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        // The last handle of a session ends its subscriptions.
        if Arc::strong_count(&self.legacy) == 1 {
            for (_, task) in self.legacy.lock().unwrap_or_else(|e| e.into_inner()).drain() {
                task.abort();
            }
        }
    }
}

impl Mcp {
    /// An MCP server over `gateway`.
    pub fn new(gateway: Arc<dyn Gateway>) -> Self {
        Mcp { gateway, legacy: Arc::default() }
    }

    /// The streamable HTTP service (for `/mcp`): one server per session.
    pub fn http_service(gateway: Arc<dyn Gateway>, config: StreamableHttpServerConfig) -> HttpService {
        StreamableHttpService::new(move || Ok(Mcp::new(gateway.clone())), Default::default(), config)
    }

    /// Serves MCP over stdin and stdout until the client goes away.
    pub async fn serve_stdio(self) -> Result<(), String> {
        use rmcp::ServiceExt;
        let running = self.serve(rmcp::transport::stdio()).await.map_err(|e| e.to_string())?;
        running.waiting().await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Sends `request` and reads the whole answer.
    async fn call(&self, caller: Option<http::Extensions>, request: Request<Bytes>) -> Result<Answer, String> {
        read_all(self.gateway.send(caller, request).await?).await
    }
}

/// Reads a whole answer.
async fn read_all(response: Response<Body>) -> Result<Answer, String> {
    {
        let (parts, mut body) = response.into_parts();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        let json = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/json"));
        let body = if bytes.is_empty() {
            Value::Null
        } else if json {
            serde_json::from_slice(&bytes).map_err(|e| format!("the API answered malformed JSON: {e}"))?
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        };
        Ok(Answer { status: parts.status, body })
    }
}

/// An answer of the API.
struct Answer {
    status: StatusCode,
    body: Value,
}

/// The HTTP request extensions of an MCP request (absent over stdio).
fn caller(context: &RequestContext<RoleServer>) -> Option<http::Extensions> {
    context.extensions.get::<http::request::Parts>().map(|p| p.extensions.clone())
}

/// A JSON-RPC error for a failed API call (resources; tools report errors
/// in their result instead).
fn api_error(answer: &Answer) -> ErrorData {
    let message = answer.body["error"]["message"].as_str().unwrap_or("the request failed").to_owned();
    let data = Some(answer.body["error"].clone());
    match answer.status {
        StatusCode::NOT_FOUND => ErrorData::resource_not_found(message, data),
        s if s.is_client_error() => ErrorData::invalid_params(message, data),
        _ => ErrorData::internal_error(message, data),
    }
}

impl ServerHandler for Mcp {
    fn get_info(&self) -> ServerConfig {
        let capabilities =
            ServerCapabilities::builder().enable_tools().enable_resources().enable_resources_subscribe().build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("ctxmesh", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "ctxmesh shares versioned context between agents. Read with get_entry, list_entries or get_package \
                 (the context relevant to an agent, within a token budget); write with put_entry passing if_match \
                 with the revision you read, so that no one's change is lost (on precondition_failed, re-read and \
                 retry). Contexts are made with create_context: a write to a context that does not exist is \
                 refused. Contexts are resources ctxmesh://contexts/{context}, entries \
                 ctxmesh://contexts/{context}/entries/{key}; subscribe to hear of changes.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::all().to_vec()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !tools::all().iter().any(|t| t.name == request.name) {
            return Err(ErrorData::invalid_params(format!("unknown tool {:?}", request.name), None));
        }
        let args = request.arguments.unwrap_or_default();
        let http = match tools::request(&request.name, &args) {
            Ok(http) => http,
            Err(message) => {
                let error = serde_json::json!({"error": {"code": ctxmesh_core::ErrorCode::InvalidArgument, "message": message}});
                return Ok(CallToolResult::structured_error(error).into());
            }
        };
        let answer = self.call(caller(&context), http).await.map_err(|e| ErrorData::internal_error(e, None))?;
        let body = tools::annotate(&request.name, answer.status, answer.body);
        let result = match (answer.status.is_success(), body) {
            (true, Value::String(text)) => CallToolResult::success(vec![ContentBlock::text(text)]),
            (true, body) => CallToolResult::structured(body),
            (false, body) => CallToolResult::structured_error(body),
        };
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let cursor = request.and_then(|r| r.cursor);
        let http = resources::list_request(cursor.as_deref()).map_err(|e| ErrorData::internal_error(e, None))?;
        let answer = self.call(caller(&context), http).await.map_err(|e| ErrorData::internal_error(e, None))?;
        if !answer.status.is_success() {
            return Err(api_error(&answer));
        }
        let mut result = ListResourcesResult::with_all_items(resources::listed(&answer.body));
        result.next_cursor = answer.body["next_cursor"].as_str().map(str::to_owned);
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(resources::templates()))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let resource = Resource::parse(&request.uri).map_err(|e| ErrorData::resource_not_found(e, None))?;
        let http = resource.read_request().map_err(|e| ErrorData::internal_error(e, None))?;
        let answer = self.call(caller(&context), http).await.map_err(|e| ErrorData::internal_error(e, None))?;
        if !answer.status.is_success() {
            return Err(api_error(&answer));
        }
        let text = serde_json::to_string_pretty(&answer.body).unwrap_or_default();
        let contents = ResourceContents::text(text, request.uri).with_mime_type("application/json");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        // Resource updates only, of URIs that name a context or an entry.
        let uris: Vec<String> = requested
            .resource_subscriptions
            .iter()
            .flatten()
            .filter(|uri| Resource::parse(uri).is_ok())
            .cloned()
            .collect();
        Some(SubscriptionFilter::builder().resource_subscriptions(uris).build())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let uris: Vec<Resource> = context
            .accepted()
            .resource_subscriptions
            .iter()
            .flatten()
            .filter_map(|u| Resource::parse(u).ok())
            .collect();
        if uris.is_empty() {
            context.cancelled().await;
            return Ok(());
        }
        let sink = context.sink().clone();
        let updates = resources::updates(self.clone(), caller(context.request_context()), uris)
            .await
            .map_err(|e| api_error_of(&e))?;
        let mut updates = std::pin::pin!(updates);
        loop {
            tokio::select! {
                _ = context.cancelled() => return Ok(()),
                next = updates.next() => match next {
                    Some(Ok(uri)) => {
                        if sink.notify_resource_updated(uri).await.is_err() {
                            return Ok(());
                        }
                    }
                    Some(Err(e)) => return Err(ErrorData::internal_error(e, None)),
                    // The server is shutting down: the subscription ends.
                    None => return Ok(()),
                },
            }
        }
    }

    #[allow(deprecated)] // the subscription of protocol versions before 2026-07-28
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let resource = Resource::parse(&request.uri).map_err(|e| ErrorData::resource_not_found(e, None))?;
        let updates =
            resources::updates(self.clone(), caller(&context), vec![resource]).await.map_err(|e| api_error_of(&e))?;
        let peer = context.peer.clone();
        let task = tokio::spawn(async move {
            let mut updates = std::pin::pin!(updates);
            while let Some(Ok(uri)) = updates.next().await {
                if peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri)).await.is_err() {
                    break;
                }
            }
        });
        let previous = self.legacy.lock().unwrap_or_else(|e| e.into_inner()).insert(request.uri, task.abort_handle());
        if let Some(previous) = previous {
            previous.abort();
        }
        Ok(())
    }

    #[allow(deprecated)] // the subscription of protocol versions before 2026-07-28
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if let Some(task) = self.legacy.lock().unwrap_or_else(|e| e.into_inner()).remove(&request.uri) {
            task.abort();
        }
        Ok(())
    }
}

/// A failed watch, as a JSON-RPC error.
fn api_error_of(e: &resources::WatchError) -> ErrorData {
    match e {
        resources::WatchError::Api { status, body } => api_error(&Answer { status: *status, body: body.clone() }),
        resources::WatchError::Gateway(message) => ErrorData::internal_error(message.clone(), None),
    }
}
