//! Backups: a consistent copy of the embedded store's database, streamed
//! to the admin (docs/backup.md).

use std::io::Read;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use ctxmesh_core::access::AuditRecord;
use serde_json::json;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::extract::Caller;

/// The request as the audit log names it.
const RESOURCE: &str = "GET /v1/backup";

/// Bytes read from the snapshot file at a time.
const CHUNK: usize = 256 * 1024;

/// Download a consistent copy of the whole database (admin only; the
/// embedded SQLite store). The copy is made in one read transaction while
/// writes go on: it holds every write acknowledged before the request
/// and no part of a later one. `ctxmesh backup` saves it with a manifest;
/// `ctxmesh restore` puts it in place. A PostgreSQL store is `409
/// conflict` (`details.store`): back it up with PostgreSQL's tools.
#[utoipa::path(get, path = "/v1/backup", operation_id = "getBackup", tag = "operations",
    responses(
        (status = 200, description = "The SQLite database file.", content_type = "application/vnd.sqlite3"),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn backup(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let allowed = caller.require_admin();
    if !matches!(state.config().auth, crate::auth::Auth::Off) {
        state.audit(AuditRecord {
            seq: 0,
            at: chrono::Utc::now(),
            agent: caller.agent.clone(),
            action: "backup".into(),
            resource: RESOURCE.into(),
            context: "*".into(),
            allowed: allowed.is_ok(),
            reason: if allowed.is_ok() { "admin".into() } else { "not the admin".into() },
        });
    }
    allowed?;
    let Some(snapshot) = state.store().snapshot().await? else {
        let mut e = ApiError::new(
            ErrorCode::Conflict,
            "the store is PostgreSQL, which ctxmesh does not copy: back it up with pg_dump --serializable-deferrable \
             or the provider's snapshots (see docs/backup.md)",
        );
        e.details = json!({"store": "postgres"});
        return Err(e);
    };
    let size = snapshot.size();
    // Opened, the file can go at once (its data stays until it is closed):
    // nothing is left behind if the client goes away.
    let mut file = std::fs::File::open(snapshot.path()).map_err(ApiError::internal)?;
    drop(snapshot);
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut chunk = vec![0u8; CHUNK];
            let read = match file.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            chunk.truncate(read);
            if tx.blocking_send(Ok(bytes::Bytes::from(chunk))).is_err() {
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.sqlite3"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"ctxmesh.db\""));
    Ok(response)
}
