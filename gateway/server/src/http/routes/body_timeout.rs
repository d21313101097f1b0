//! The request-body deadline: a body must arrive whole within `body_read_timeout` of its request
//! head, or the request is answered `408 request_timeout` and the connection closed.
//!
//! The body is wrapped so that reading it fails once the deadline has passed; whichever extractor
//! was reading it gives up, and this layer replaces whatever the handler made of that failure
//! with the 408 (OpenAI-shaped, or RFC 6749-shaped on the OAuth endpoints). Bodies are read
//! before a request is admitted against the grant's limits, so a body that never arrives has
//! reserved nothing.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use http_body::{Frame, SizeHint};

use crate::base::error::ApiError;

/// Reading the body failed because its deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

/// A request body that fails once `deadline` has passed before its end.
struct TimedBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Set when the deadline cut the body off (read by [`limit_body_time`]).
    expired: Arc<AtomicBool>,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if self.expired.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.expired.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))))
                }
                Poll::Pending => Poll::Pending,
            },
            ready => ready,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Puts the deadline on the request's body, and answers 408 if the deadline cut it off.
pub async fn limit_body_time(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let oauth = matches!(
        req.uri().path(),
        super::oauth::TOKEN_PATH | super::oauth::DEVICE_PATH
    );
    let expired = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| {
        Body::new(TimedBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            expired: expired.clone(),
        })
    });
    let res = next.run(req).await;
    if !expired.load(Ordering::Relaxed) {
        return res;
    }
    let mut res = if oauth {
        ApiError::RequestTimeout.into_oauth_response()
    } else {
        ApiError::RequestTimeout.into_response()
    };
    // The rest of the body may still be on its way: this connection cannot carry another request.
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}
