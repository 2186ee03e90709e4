//! `GET /v1/ws`: one WebSocket carrying many watch subscriptions.
//!
//! The client sends JSON commands; the server answers with JSON messages
//! tagged by the client's subscription id (`sub`). Each subscription has the
//! semantics of the SSE watch (see `crate::watch`); the protocol is in
//! docs/api.md.

use std::pin::Pin;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use ctxmesh_core::Priority;
use ctxmesh_core::access::Permission;
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_stream::{StreamExt, StreamMap};

use super::agents::inbox_spec;
use super::context_id;
use super::watch::{FilterParams, start_spec};
use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::extract::Caller;
use crate::watch::{Order, WatchItem, watch};

/// Largest command a client may send.
const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Most subscriptions on one connection.
const MAX_SUBSCRIPTIONS: usize = 256;

type Subscription = Pin<Box<dyn Stream<Item = WatchItem> + Send>>;

/// A client command.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Command {
    Subscribe {
        sub: String,
        context: Option<String>,
        /// An agent whose inbox to follow instead of a context.
        inbox: Option<String>,
        after: Option<u64>,
        #[serde(default)]
        order: Order,
        types: Option<Vec<String>>,
        prefix: Option<String>,
        min_priority: Option<Priority>,
    },
    Unsubscribe {
        sub: String,
    },
    Ping,
}

/// Upgrade to the multiplexed watch protocol.
#[utoipa::path(get, path = "/v1/ws", operation_id = "openWebSocket", tag = "events",
    params(
        ("Connection" = String, Header, description = "`Upgrade`", pattern = "(?i)upgrade"),
        ("Upgrade" = String, Header, description = "`websocket`", pattern = "(?i)^websocket$"),
        ("Sec-WebSocket-Version" = String, Header, description = "`13`", pattern = "^13$"),
        ("Sec-WebSocket-Key" = String, Header, description = "The client's handshake nonce (RFC 6455)"),
    ),
    responses((status = 101, description = "WebSocket; see docs/api.md")))]
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    caller: Caller,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // A request that is no WebSocket handshake gets the API's error body.
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            let message = format!("not a WebSocket handshake: {}", rejection.body_text());
            return axum::response::IntoResponse::into_response(ApiError::invalid_argument("upgrade", message));
        }
    };
    let guard = match state.open_stream(&caller) {
        Ok(guard) => guard,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    ws.max_message_size(MAX_COMMAND_BYTES).max_frame_size(MAX_COMMAND_BYTES).on_upgrade(move |socket| async move {
        // The connection's place in its agent's stream limit.
        let _place = guard;
        serve(socket, state, caller).await
    })
}

async fn serve(mut socket: WebSocket, state: AppState, caller: Caller) {
    let mut subs: StreamMap<String, Subscription> = StreamMap::new();
    let mut closing = Box::pin(state.closing());
    loop {
        let outgoing = tokio::select! {
            () = &mut closing => {
                let _ = socket.send(error_message(None, &ApiError::new(
                    ErrorCode::Unavailable,
                    "the server is shutting down; resume from your last revisions",
                ))).await;
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => handle_command(&state, &caller, &mut subs, text.as_str()).await,
                Some(Ok(Message::Binary(_))) => vec![error_message(None, &ApiError::new(ErrorCode::InvalidJson, "send commands as text frames"))],
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return,
            },
            Some((sub, item)) = subs.next(), if !subs.is_empty() => {
                let ends = matches!(item, WatchItem::Compacted { .. } | WatchItem::Deleted(_) | WatchItem::Failed(_));
                let messages = item_messages(&sub, item);
                if ends {
                    subs.remove(&sub);
                }
                messages
            }
        };
        for message in outgoing {
            if socket.send(message).await.is_err() {
                return;
            }
        }
    }
}

async fn handle_command(
    state: &AppState,
    caller: &Caller,
    subs: &mut StreamMap<String, Subscription>,
    text: &str,
) -> Vec<Message> {
    let command: Command = match serde_json::from_str(text) {
        Ok(c) => c,
        Err(e) => {
            return vec![error_message(None, &ApiError::new(ErrorCode::InvalidArgument, format!("bad command: {e}")))];
        }
    };
    match command {
        Command::Ping => vec![text_message(json!({"type": "pong"}))],
        Command::Unsubscribe { sub } => {
            if subs.remove(&sub).is_none() {
                return vec![error_message(Some(&sub), &ApiError::not_found(format!("no subscription {sub:?}")))];
            }
            vec![text_message(json!({"type": "unsubscribed", "sub": sub}))]
        }
        Command::Subscribe { sub, context, inbox, after, order, types, prefix, min_priority } => {
            if subs.contains_key(&sub) {
                let e = ApiError::new(ErrorCode::AlreadyExists, format!("subscription {sub:?} exists"));
                return vec![error_message(Some(&sub), &e)];
            }
            if subs.len() >= MAX_SUBSCRIPTIONS {
                let e = ctxmesh_core::Error::TooLarge {
                    what: "number of subscriptions on this connection".into(),
                    limit: MAX_SUBSCRIPTIONS as u64,
                    actual: MAX_SUBSCRIPTIONS as u64 + 1,
                };
                return vec![error_message(Some(&sub), &e.into())];
            }
            let params = FilterParams { types: types.map(|t| t.join(",")), prefix, min_priority };
            let spec = async {
                let filter = params.filter()?;
                match (&context, &inbox) {
                    (Some(context), None) => {
                        let context = context_id(context)?;
                        let scopes =
                            crate::authz::authorize(state, caller, &context, Permission::Read, "subscribe /v1/ws")
                                .await?;
                        start_spec(state, caller, context, scopes.read, after, filter, order).await
                    }
                    (None, Some(agent)) => inbox_spec(state, caller, agent, after, filter).await,
                    _ => Err(ApiError::invalid_argument("context", "subscribe to either a context or an inbox")),
                }
            };
            match spec.await {
                Ok(spec) => {
                    let after = spec.after;
                    subs.insert(sub.clone(), Box::pin(watch(state.store_arc(), spec, state.closing())));
                    let what = match inbox {
                        Some(agent) => json!({"type": "subscribed", "sub": sub, "inbox": agent, "after": after}),
                        None => json!({"type": "subscribed", "sub": sub, "context": context, "after": after}),
                    };
                    vec![text_message(what)]
                }
                Err(e) => vec![error_message(Some(&sub), &e)],
            }
        }
    }
}

fn item_messages(sub: &str, item: WatchItem) -> Vec<Message> {
    match item {
        WatchItem::Events { events, revision } => {
            let mut text = format!(r#"{{"type":"events","sub":{},"revision":{revision},"events":["#, json!(sub));
            for (i, d) in events.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                text.push_str(&d.json());
            }
            text.push_str("]}");
            vec![Message::Text(text.into())]
        }
        WatchItem::Progress(revision) => {
            vec![text_message(json!({"type": "progress", "sub": sub, "revision": revision}))]
        }
        WatchItem::KeepAlive => vec![Message::Ping(Default::default())],
        WatchItem::Compacted { requested, compacted } => vec![text_message(
            json!({"type": "compacted", "sub": sub, "requested": requested, "compacted_revision": compacted}),
        )],
        WatchItem::Deleted(d) => {
            let event: Value = serde_json::from_str(&d.json()).unwrap_or(Value::Null);
            let revision = d.event().revision;
            vec![
                text_message(json!({"type": "events", "sub": sub, "revision": revision, "events": [event]})),
                text_message(json!({"type": "closed", "sub": sub, "reason": "context deleted"})),
            ]
        }
        WatchItem::Failed(e) => vec![error_message(Some(sub), &e)],
    }
}

fn text_message(value: Value) -> Message {
    Message::Text(value.to_string().into())
}

fn error_message(sub: Option<&str>, e: &ApiError) -> Message {
    text_message(
        json!({"type": "error", "sub": sub, "error": {"code": e.code, "message": e.message, "details": e.details}}),
    )
}
