//! etcd's status for a request over the gRPC message limit.
//!
//! tonic refuses a message longer than `max_decoding_message_size` with `OUT_OF_RANGE` "Error,
//! decoded message length too large: found N bytes, the limit is: M bytes"; grpc-go, and so
//! etcd, answers `RESOURCE_EXHAUSTED` "grpc: received message larger than max (N vs. M)".
//! [`LimitErrors`] is a tower layer over the served routes that rewrites exactly that status —
//! in a trailers-only response (unary calls) or in a streaming response's trailers — and lets
//! every other status through untouched (handlers' own `OUT_OF_RANGE` errors have other texts).
//! A request between `--max-request-bytes` and the gRPC limit is decoded and refused by the
//! server itself (`etcdserver: request is too large`), as etcd does.
//!
//! Real builds only: madsim-tonic passes messages without encoding them, so it has no limit.

use futures::future::MapOk;
use futures::TryFutureExt as _;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::codegen::Service;
use tonic::{Code, Status};

/// The layer (`Server::builder().layer(LimitErrors)`).
#[derive(Clone, Copy, Debug, Default)]
pub struct LimitErrors;

impl<S> tower_layer::Layer<S> for LimitErrors {
    type Service = LimitErrorsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LimitErrorsService { inner }
    }
}

/// The layered service.
#[derive(Clone, Debug)]
pub struct LimitErrorsService<S> {
    inner: S,
}

type Respond<B> = fn(http::Response<B>) -> http::Response<RewrittenTrailers<B>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for LimitErrorsService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<RewrittenTrailers<ResBody>>;
    type Error = S::Error;
    type Future = MapOk<S::Future, Respond<ResBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let respond: Respond<ResBody> = |mut response| {
            rewrite(response.headers_mut());
            response.map(|inner| RewrittenTrailers { inner })
        };
        self.inner.call(request).map_ok(respond)
    }
}

/// A response body whose trailers get the same rewrite.
#[derive(Debug)]
pub struct RewrittenTrailers<B> {
    inner: B,
}

impl<B: Body + Unpin> Body for RewrittenTrailers<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map_ok(|mut frame| {
                if let Some(trailers) = frame.trailers_mut() {
                    rewrite(trailers);
                }
                frame
            })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Replaces tonic's decoding-limit status in `headers` (if that is what they carry) by etcd's.
fn rewrite(headers: &mut HeaderMap) {
    let etcd = Status::from_header_map(headers)
        .as_ref()
        .and_then(etcd_status);
    if let Some(status) = etcd {
        let _ = status.add_header(headers);
    }
}

/// etcd's status for tonic's "decoded message length too large", `None` for anything else.
fn etcd_status(status: &Status) -> Option<Status> {
    if status.code() != Code::OutOfRange {
        return None;
    }
    let rest = status
        .message()
        .strip_prefix("Error, decoded message length too large: found ")?;
    let (found, limit) = rest.split_once(" bytes, the limit is: ")?;
    let limit = limit.strip_suffix(" bytes")?;
    Some(Status::resource_exhausted(format!(
        "grpc: received message larger than max ({found} vs. {limit})"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(status: Status) -> HeaderMap {
        let mut h = HeaderMap::new();
        status.add_header(&mut h).unwrap();
        h
    }

    #[test]
    fn only_the_decoding_limit_status_is_rewritten() {
        let mut h = headers(Status::out_of_range(
            "Error, decoded message length too large: found 3000010 bytes, the limit is: 2097152 bytes",
        ));
        rewrite(&mut h);
        let s = Status::from_header_map(&h).unwrap();
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(
            s.message(),
            "grpc: received message larger than max (3000010 vs. 2097152)"
        );

        let future = "etcdserver: mvcc: required revision is a future revision";
        let mut h = headers(Status::out_of_range(future));
        rewrite(&mut h);
        let s = Status::from_header_map(&h).unwrap();
        assert_eq!((s.code(), s.message()), (Code::OutOfRange, future));

        let mut ok = HeaderMap::new();
        rewrite(&mut ok);
        assert!(ok.is_empty());
    }
}
