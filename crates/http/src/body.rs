//! The response body the layer returns: bytes from the cache (or buffered from the service), the service's
//! own body streamed through, what was buffered of a body too large to store followed by its rest, or the
//! error that interrupted buffering.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

pin_project_lite::pin_project! {
    /// The body of a response that went through [`crate::HttpCache`].
    pub struct CacheBody<B: Body> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<B: Body> {
        // A complete body held in memory.
        Full { data: Option<Bytes> },
        // The service's body, untouched.
        Inner { #[pin] inner: B },
        // Reading the service's body failed while buffering it; the error reaches the client's stream.
        Failed { error: Option<B::Error> },
        // What was buffered of the service's body before it proved too large to store (or ended in trailers),
        // then the frame that showed it, then the rest of the body.
        Prefixed {
            prefix: Option<Bytes>,
            pending: Option<Result<Frame<Bytes>, B::Error>>,
            rest: Pin<Box<B>>,
        },
    }
}

impl<B: Body> CacheBody<B> {
    pub(crate) fn full(data: Bytes) -> Self {
        CacheBody {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    pub(crate) fn inner(inner: B) -> Self {
        CacheBody {
            kind: Kind::Inner { inner },
        }
    }

    /// `prefix` (already read from `rest`), then `pending` (a frame, or the error reading stopped at), then the
    /// rest of the service's body.
    pub(crate) fn prefixed(
        prefix: Bytes,
        pending: Option<Result<Frame<Bytes>, B::Error>>,
        rest: Pin<Box<B>>,
    ) -> Self {
        CacheBody {
            kind: Kind::Prefixed {
                prefix: (!prefix.is_empty()).then_some(prefix),
                pending,
                rest,
            },
        }
    }

    pub(crate) fn failed(error: B::Error) -> Self {
        CacheBody {
            kind: Kind::Failed { error: Some(error) },
        }
    }
}

impl<B> Body for CacheBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Inner { inner } => inner.poll_frame(cx),
            KindProj::Failed { error } => Poll::Ready(error.take().map(Err)),
            KindProj::Prefixed {
                prefix,
                pending,
                rest,
            } => {
                if let Some(d) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                if let Some(f) = pending.take() {
                    return Poll::Ready(Some(f));
                }
                rest.as_mut().poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data } => data.is_none(),
            Kind::Inner { inner } => inner.is_end_stream(),
            Kind::Failed { error } => error.is_none(),
            Kind::Prefixed {
                prefix,
                pending,
                rest,
            } => prefix.is_none() && pending.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Inner { inner } => inner.size_hint(),
            Kind::Failed { .. } => SizeHint::default(),
            Kind::Prefixed { prefix, rest, .. } => {
                let held = prefix.as_ref().map_or(0, |d| d.len() as u64);
                let r = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(r.lower().saturating_add(held));
                if let Some(upper) = r.upper() {
                    hint.set_upper(upper.saturating_add(held));
                }
                hint
            }
        }
    }
}

/// A service's body read up to a bound.
pub(crate) enum Buffered<B: Body> {
    /// The whole body, within the bound and without trailers.
    Whole(Bytes),
    /// What was read, then the rest: the body outgrew the bound, ended in trailers, or failed.
    Partial(CacheBody<B>),
}

pub(crate) async fn buffer_bounded<B>(body: B, max: u64) -> Buffered<B>
where
    B: Body<Data = Bytes>,
{
    use http_body_util::BodyExt as _;
    let mut body = Box::pin(body);
    let mut held = bytes::BytesMut::new();
    loop {
        match body.frame().await {
            None => return Buffered::Whole(held.freeze()),
            Some(Err(e)) => {
                return Buffered::Partial(if held.is_empty() {
                    CacheBody::failed(e)
                } else {
                    // The client gets what arrived, then the error.
                    CacheBody::prefixed(held.freeze(), Some(Err(e)), body)
                });
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    held.extend_from_slice(&data);
                    if held.len() as u64 > max {
                        return Buffered::Partial(CacheBody::prefixed(held.freeze(), None, body));
                    }
                }
                Err(trailers) => {
                    return Buffered::Partial(CacheBody::prefixed(
                        held.freeze(),
                        Some(Ok(trailers)),
                        body,
                    ));
                }
            },
        }
    }
}

impl<B: Body> std::fmt::Debug for CacheBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Full { .. } => "full",
            Kind::Inner { .. } => "streamed",
            Kind::Failed { .. } => "failed",
            Kind::Prefixed { .. } => "prefixed",
        };
        f.debug_struct("CacheBody").field("kind", &kind).finish()
    }
}
