//! The `etcdserverpb.Watch` service: many watchers per bidirectional stream.
//!
//! Each watcher is a task that *pulls* its events from the member's MVCC history: it remembers
//! the next revision it owes the client, reads `events_since(next)` whenever the applied revision
//! moves, sends them, and advances `next` past the revision it read at. Because every event comes
//! from the one ordered history, events arrive in revision order, never twice and never skipped;
//! a slow client only makes its own watcher fall behind (it catches up from history on its next
//! read) and never blocks the apply path. A watcher whose next revision has been compacted away
//! is canceled with `compact_revision` set, as etcd does. A client that resumes on another member
//! from its last revision + 1 gets exactly the rest, since every member applies the same log.
//! A stream's watchers live until the client drops the response stream (or it errors); a client
//! that only half-closes its request side keeps receiving events, as with etcd.

use super::auth::identity::Credentials;
use super::core::ServerCore;
use super::range::to_proto;
use crate::auth::{AuthInfo, AuthStore, PermKind};
use crate::mvcc::{Event, EventKind, MvccError};
use crate::pb::etcdserverpb::watch_create_request::FilterType;
use crate::pb::etcdserverpb::watch_request::RequestUnion;
use crate::pb::etcdserverpb::watch_server::Watch;
use crate::pb::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use crate::pb::mvccpb;
use futures::stream::BoxStream;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status, Streaming};

/// Responses buffered per stream before watchers wait for the client.
const STREAM_BUFFER: usize = 256;
/// etcd's default interval for progress notifications to watchers that ask for them.
const PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_secs(600);
/// Most history records one page of a watcher's catch-up reads (so it holds the store's
/// lock, and the page's events, for a bounded time and memory); few in simulation, so that
/// catch-ups span many pages.
#[cfg(not(madsim))]
const WATCH_PAGE_RECORDS: usize = 1000;
#[cfg(madsim)]
const WATCH_PAGE_RECORDS: usize = 3;
/// The cancel reason of a watch its sender may not read (etcd's, a gRPC error's text).
const PERMISSION_DENIED: &str =
    "rpc error: code = PermissionDenied desc = etcdserver: permission denied";
/// The id etcd puts on responses that belong to no watcher (progress replies).
const NO_WATCH_ID: i64 = -1;

/// The Watch service.
pub struct WatchService {
    core: Arc<ServerCore>,
}

impl WatchService {
    /// Serves Watch on `core`.
    pub fn new(core: Arc<ServerCore>) -> Self {
        WatchService { core }
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = BoxStream<'static, Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let credentials = self.core.credentials(&request);
        let session = Session {
            core: self.core.clone(),
            credentials,
            out: tx,
            watchers: BTreeMap::new(),
            next_id: 0,
        };
        tokio::spawn(session.run(request.into_inner()));
        Ok(Response::new(
            tokio_stream::wrappers::ReceiverStream::new(rx).boxed(),
        ))
    }
}

type Out = mpsc::Sender<Result<WatchResponse, Status>>;

/// One client stream and its watchers.
struct Session {
    core: Arc<ServerCore>,
    /// What the stream presented: each create is checked as its sender is then.
    credentials: Credentials,
    out: Out,
    watchers: BTreeMap<i64, JoinHandle<()>>,
    next_id: i64,
}

impl Session {
    async fn run(mut self, mut inbound: Streaming<WatchRequest>) {
        let half_closed = loop {
            let req = match inbound.message().await {
                Ok(Some(req)) => req,
                Ok(None) => break true,
                Err(_) => break false,
            };
            let sent = match req.request_union {
                Some(RequestUnion::CreateRequest(c)) => self.create(c).await,
                Some(RequestUnion::CancelRequest(c)) => self.cancel(c.watch_id).await,
                Some(RequestUnion::ProgressRequest(_)) => {
                    let revision = self.core.state.store().current_revision();
                    self.send(WatchResponse {
                        header: Some(self.core.header(revision)),
                        watch_id: NO_WATCH_ID,
                        ..Default::default()
                    })
                    .await
                }
                None => true,
            };
            if !sent {
                break false;
            }
        };
        if half_closed {
            // The client will send nothing more but still reads: as etcd does, its watchers
            // keep delivering until it drops (cancels) the response stream.
            self.out.closed().await;
        }
        for (_, w) in std::mem::take(&mut self.watchers) {
            w.abort();
        }
    }

    async fn send(&self, resp: WatchResponse) -> bool {
        self.out.send(Ok(resp)).await.is_ok()
    }

    async fn create(&mut self, c: WatchCreateRequest) -> bool {
        self.watchers.retain(|_, w| !w.is_finished());
        let id = if c.watch_id != 0 {
            c.watch_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id
        };
        let revision = self.core.state.store().current_revision();
        let refusal = if self.watchers.contains_key(&id) || id < 0 {
            Some("etcdserver: duplicate watch ID")
        } else if !self.permitted(&c) {
            Some(PERMISSION_DENIED)
        } else {
            None
        };
        if let Some(reason) = refusal {
            return self
                .send(WatchResponse {
                    header: Some(self.core.header(revision)),
                    watch_id: id,
                    created: true,
                    canceled: true,
                    cancel_reason: reason.into(),
                    ..Default::default()
                })
                .await;
        }
        let next = if c.start_revision > 0 {
            c.start_revision
        } else {
            revision + 1
        };
        let watcher = Watcher {
            core: self.core.clone(),
            id,
            spec: c,
            next,
            out: self.out.clone(),
        };
        if !self
            .send(WatchResponse {
                header: Some(self.core.header(revision)),
                watch_id: id,
                created: true,
                ..Default::default()
            })
            .await
        {
            return false;
        }
        self.watchers.insert(id, tokio::spawn(watcher.run()));
        true
    }

    /// Whether the stream's sender may read what `c` watches (etcd checks at creation).
    fn permitted(&self, c: &WatchCreateRequest) -> bool {
        let Ok(who) = self.core.identify(&self.credentials) else {
            return false;
        };
        let read = |auth: &AuthStore, who: &AuthInfo| {
            auth.check_op(who, PermKind::Read, &c.key, &c.range_end)
        };
        self.core.check_read(&who, read).is_ok()
    }

    async fn cancel(&mut self, id: i64) -> bool {
        let Some(w) = self.watchers.remove(&id) else {
            return true;
        };
        w.abort();
        let revision = self.core.state.store().current_revision();
        self.send(WatchResponse {
            header: Some(self.core.header(revision)),
            watch_id: id,
            canceled: true,
            ..Default::default()
        })
        .await
    }
}

/// One watcher: a key range, the next revision it owes, and its filters.
struct Watcher {
    core: Arc<ServerCore>,
    id: i64,
    spec: WatchCreateRequest,
    next: i64,
    out: Out,
}

enum Read {
    /// Events as of the store's `revision`; `resume_at` is where the next page starts when
    /// this one did not reach `revision`.
    Events {
        events: Vec<Event>,
        revision: i64,
        resume_at: Option<i64>,
    },
    Compacted(i64),
}

impl Watcher {
    async fn run(mut self) {
        let core = self.core.clone();
        let mut progress = tokio::time::interval(PROGRESS_NOTIFY_INTERVAL);
        progress.tick().await;
        loop {
            let changed = core.state.revision_changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.read() {
                Read::Compacted(compact_revision) => {
                    let _ = self
                        .out
                        .send(Ok(WatchResponse {
                            header: Some(self.core.header(compact_revision)),
                            watch_id: self.id,
                            canceled: true,
                            compact_revision,
                            cancel_reason: "etcdserver: mvcc: required revision has been compacted"
                                .into(),
                            ..Default::default()
                        }))
                        .await;
                    return;
                }
                Read::Events {
                    events,
                    revision,
                    resume_at,
                } => {
                    if !self.deliver(events, revision).await {
                        return;
                    }
                    if let Some(at) = resume_at {
                        // Catching up: the next page at once (the lock was let go between).
                        self.next = at;
                        #[cfg(madsim)]
                        if crate::fault::active(crate::fault::Bug::WatchPageSkipsRevision) {
                            self.next = at + 1;
                        }
                        continue;
                    }
                    self.next = self.next.max(revision + 1);
                }
            }
            tokio::select! {
                // biased: tokio picks unbiased branches with a process-global RNG, which would
                // break simulation replay.
                biased;
                _ = &mut changed => {}
                _ = progress.tick(), if self.spec.progress_notify => {
                    let revision = self.core.state.store().current_revision();
                    let resp = WatchResponse {
                        header: Some(self.core.header(revision)),
                        watch_id: self.id,
                        ..Default::default()
                    };
                    if self.out.send(Ok(resp)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// The next page of events from `next` on (see [`Store::events_page`]).
    ///
    /// [`Store::events_page`]: crate::mvcc::Store::events_page
    fn read(&self) -> Read {
        let store = self.core.state.store();
        let (key, end) = (&self.spec.key[..], &self.spec.range_end[..]);
        let revision = store.current_revision();
        match store.events_page(key, end, self.next, WATCH_PAGE_RECORDS) {
            Ok(page) => Read::Events {
                events: page.events,
                revision,
                resume_at: page.resume_at,
            },
            Err(MvccError::Compacted) => Read::Compacted(store.compacted_revision()),
            Err(MvccError::FutureRevision) => Read::Events {
                events: Vec::new(),
                revision,
                resume_at: None,
            },
        }
    }

    fn wanted(&self, e: &Event) -> bool {
        !self.spec.filters.iter().any(|f| {
            (*f == FilterType::Noput as i32 && e.kind == EventKind::Put)
                || (*f == FilterType::Nodelete as i32 && e.kind == EventKind::Delete)
        })
    }

    fn to_proto(&self, e: Event) -> mvccpb::Event {
        mvccpb::Event {
            r#type: match e.kind {
                EventKind::Put => mvccpb::event::EventType::Put as i32,
                EventKind::Delete => mvccpb::event::EventType::Delete as i32,
            },
            kv: Some(to_proto(e.kv, false)),
            prev_kv: if self.spec.prev_kv {
                e.prev_kv.map(|kv| to_proto(kv, false))
            } else {
                None
            },
        }
    }

    /// Sends the wanted events (in fragments when the client allows and they are large).
    async fn deliver(&self, events: Vec<Event>, revision: i64) -> bool {
        #[cfg(madsim)]
        let events = {
            let mut events = events;
            if crate::fault::active(crate::fault::Bug::WatchDropsEvent) && events.len() > 1 {
                events.pop();
            }
            events
        };
        let events: Vec<mvccpb::Event> = events
            .into_iter()
            .filter(|e| self.wanted(e))
            .map(|e| self.to_proto(e))
            .collect();
        if events.is_empty() {
            return true;
        }
        let limit = self.core.limits.max_request_bytes.max(1);
        let chunks: Vec<Vec<mvccpb::Event>> = if self.spec.fragment {
            fragments(events, limit)
        } else {
            vec![events]
        };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let resp = WatchResponse {
                header: Some(self.core.header(revision)),
                watch_id: self.id,
                fragment: i < last,
                events: chunk,
                ..Default::default()
            };
            if self.out.send(Ok(resp)).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// Splits events into chunks of at most `limit` encoded bytes (at least one event each).
fn fragments(events: Vec<mvccpb::Event>, limit: usize) -> Vec<Vec<mvccpb::Event>> {
    use prost::Message as _;
    let mut chunks = vec![Vec::new()];
    let mut size = 0;
    for e in events {
        let len = e.encoded_len();
        let current = chunks.last_mut().expect("non-empty");
        if !current.is_empty() && size + len > limit {
            chunks.push(Vec::new());
            size = 0;
        }
        size += len;
        chunks.last_mut().expect("non-empty").push(e);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> mvccpb::Event {
        mvccpb::Event {
            kv: Some(mvccpb::KeyValue {
                key: vec![b'k'; n].into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn fragments_respect_the_limit_and_keep_order() {
        let chunks = fragments((1..=6).map(|_| event(40)).collect(), 100);
        assert!(chunks.len() >= 3);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 6);
        let huge = fragments(vec![event(500)], 100);
        assert_eq!(
            huge.len(),
            1,
            "an event larger than the limit still goes out alone"
        );
    }
}
