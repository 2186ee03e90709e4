//! A request answered before its body was read (refused by
//! authentication, authorization or a bad path, say) leaves the rest of
//! the body on the connection, which then cannot carry another request:
//! hyper closes it after the answer. Without a word, a client that pooled
//! the connection sends its next request into a closing socket and sees
//! it dropped ("server disconnected without sending a response"). So such
//! answers say `Connection: close`, and clients open a new connection.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

/// The middleware: marks answers to requests whose body was left unread.
pub(crate) async fn close_if_unread(request: Request, next: Next) -> Response {
    let has_body = request.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
        || request.headers().contains_key(header::TRANSFER_ENCODING);
    if !has_body {
        return next.run(request).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let body = Body::new(Tracked { inner: body, read: read.clone() });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    // An upgraded connection (WebSocket) is not reused for requests.
    if !read.load(Ordering::Acquire) && response.status() != axum::http::StatusCode::SWITCHING_PROTOCOLS {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records when it was read to its end.
struct Tracked {
    inner: Body,
    read: Arc<AtomicBool>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
