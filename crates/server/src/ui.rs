//! The console: a single-page application at `/ui`, served from assets
//! embedded in the binary (docs/console.md).
//!
//! The assets in `crates/server/ui/` are plain HTML, CSS and JavaScript
//! modules: there is no build step, so `cargo build` needs nothing but
//! Rust. Every answer carries a strict Content-Security-Policy (scripts,
//! styles and connections from this origin only; no inline script, no
//! framing), so that a value an agent wrote can never run in the console
//! even if a view rendered it wrong. The console keeps its token in the
//! tab's `sessionStorage` and sends it as `Authorization: Bearer`: never in
//! a URL nor a cookie.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The console's policy: nothing but this origin's own scripts, styles and
/// API; no inline script or style element, no plugin, no form posts
/// elsewhere, no framing.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its path under `/ui/`, its media type and its bytes.
struct Asset {
    path: &'static str,
    media_type: &'static str,
    body: &'static str,
}

macro_rules! assets {
    ($($path:literal => $media:expr),* $(,)?) => {
        &[$(Asset { path: $path, media_type: $media, body: include_str!(concat!("../ui/", $path)) }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `crates/server/ui/` (a test checks that none is missing).
static ASSETS: &[Asset] = assets![
    "index.html" => "text/html; charset=utf-8",
    "console.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "js/api.js" => JS,
    "js/dom.js" => JS,
    "js/json.js" => JS,
    "js/main.js" => JS,
    "js/nav.js" => JS,
    "js/sse.js" => JS,
    "js/views/audit.js" => JS,
    "js/views/conflicts.js" => JS,
    "js/views/context.js" => JS,
    "js/views/contexts.js" => JS,
    "js/views/coordination.js" => JS,
    "js/views/live.js" => JS,
    "js/views/package.js" => JS,
    "js/views/timeline.js" => JS,
];

/// The entity tag of each asset, in `ASSETS`' order.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body.as_bytes());
                let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

/// `GET /ui` and `GET /ui/`: the page.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers).unwrap_or_else(|e| e.into_response())
}

/// `GET /ui/{*path}`: an asset; any other path under `/ui/` is the page
/// too, so that a view's address (`/ui/c/launch.v2/timeline`) can be
/// reloaded. Only a missing file where assets live (`/ui/js/...`, or a
/// top-level name with an extension) is `404`.
pub(crate) async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let known = ASSETS.iter().any(|a| a.path == path);
    let asset_like = path.starts_with("js/") || (!path.contains('/') && path.contains('.'));
    let found = if known || asset_like { serve(&path, &headers) } else { serve("index.html", &headers) };
    found.unwrap_or_else(|e| e.into_response())
}

fn serve(path: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let (i, asset) = ASSETS
        .iter()
        .enumerate()
        .find(|(_, a)| a.path == path)
        .ok_or_else(|| ApiError::not_found(format!("no console asset /ui/{path}")))?;
    let etag = &etags()[i];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.body.into_response() };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.media_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Revalidated on each load: a new server version serves its own console.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn files_under(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_file_of_the_console_is_embedded() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut on_disk = Vec::new();
        files_under(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "crates/server/ui and the ASSETS table of ui.rs must list the same files");
    }

    #[test]
    fn no_asset_runs_inline_script_or_writes_html() {
        // The policy forbids inline script; the code must not need it, nor
        // build markup from strings (values are rendered as text only).
        for a in ASSETS {
            assert!(!a.body.contains("innerHTML"), "{} uses innerHTML", a.path);
            assert!(!a.body.contains("outerHTML"), "{} uses outerHTML", a.path);
            assert!(!a.body.contains("insertAdjacentHTML"), "{} uses insertAdjacentHTML", a.path);
            assert!(!a.body.contains("document.write"), "{} uses document.write", a.path);
            assert!(!a.body.contains("eval("), "{} uses eval", a.path);
            if a.path.ends_with(".html") {
                assert!(!a.body.contains("<script>"), "{} has an inline script", a.path);
                let handler = a.body.split(" on").skip(1).any(|rest| {
                    let name: String = rest.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
                    !name.is_empty() && rest[name.len()..].starts_with('=')
                });
                assert!(!handler, "{} has an inline event handler", a.path);
            }
        }
    }

    #[tokio::test]
    async fn assets_carry_the_policy_and_revalidate() {
        let r = index(HeaderMap::new()).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let etag = r.headers()[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(index(again).await.status(), StatusCode::NOT_MODIFIED);

        let js = asset(axum::extract::Path("js/main.js".to_owned()), HeaderMap::new()).await;
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(js.headers()[header::CONTENT_TYPE], JS);
        // A view's address serves the page; a missing file is 404.
        let view = asset(axum::extract::Path("c/launch.v2/timeline".to_owned()), HeaderMap::new()).await;
        assert_eq!(view.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let missing = asset(axum::extract::Path("js/nope.js".to_owned()), HeaderMap::new()).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }
}
