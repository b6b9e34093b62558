//! Test-only generator of valid concurrent histories, by simulating a linearizable etcd store.
//!
//! Owns [`generate`]: a seeded (splitmix64), event-driven simulation in which each client issues
//! one op at a time; every op that takes effect does so atomically at a linearization point drawn
//! inside its interval (an `Unknown` op that takes effect may do so up to 20 times its timeout
//! after its invoke).
//! Responses come from [`Store`], a reference implementation of etcd's KV semantics written
//! independently of `crate::kv_model` so the two cannot share a bug. Serializable gets answer from
//! a snapshot up to a few revisions old. Invariant: the output is linearizable by construction,
//! and identical for identical `(seed, config)`.

use std::collections::BTreeMap;

use crate::history::{History, KeyState, Outcome, Request, Response, Time};

pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn permille(&mut self, p: u32) -> bool {
        self.below(1000) < u64::from(p)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct GenConfig {
    pub clients: usize,
    pub ops: usize,
    pub keys: usize,
    /// Chance (per mille) an op ends `Unknown`; half of those take effect.
    pub unknown_permille: u32,
    pub failed_permille: u32,
    pub initial_revision: i64,
    /// 0: every written value is unique; n > 0: values are drawn from n distinct strings.
    pub value_pool: u64,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            clients: 5,
            ops: 200,
            keys: 3,
            unknown_permille: 30,
            failed_permille: 20,
            initial_revision: 1,
            value_pool: 0,
        }
    }
}

/// Shorthand for a [`GenConfig`].
pub(crate) fn config(
    clients: usize,
    keys: usize,
    unknown_permille: u32,
    failed_permille: u32,
    initial_revision: i64,
    ops: usize,
) -> GenConfig {
    GenConfig {
        clients,
        ops,
        keys,
        unknown_permille,
        failed_permille,
        initial_revision,
        value_pool: 0,
    }
}

/// Reference etcd KV store with per-revision snapshots for serializable reads.
pub(crate) struct Store {
    initial: i64,
    revision: i64,
    kvs: BTreeMap<String, KeyState>,
    snapshots: Vec<BTreeMap<String, KeyState>>,
}

impl Store {
    pub fn new(initial: i64) -> Self {
        Self {
            initial,
            revision: initial,
            kvs: BTreeMap::new(),
            snapshots: vec![BTreeMap::new()],
        }
    }

    fn put(&mut self, key: &str, value: &str) -> i64 {
        self.revision += 1;
        let rev = self.revision;
        let next = match self.kvs.get(key) {
            Some(old) => KeyState {
                value: value.to_string(),
                create_revision: old.create_revision,
                mod_revision: rev,
                version: old.version + 1,
            },
            None => KeyState {
                value: value.to_string(),
                create_revision: rev,
                mod_revision: rev,
                version: 1,
            },
        };
        self.kvs.insert(key.to_string(), next);
        self.snapshots.push(self.kvs.clone());
        rev
    }

    pub fn apply(&mut self, req: &Request, rng: &mut Rng) -> Response {
        match req {
            Request::Put { key, value } => Response::Put {
                revision: self.put(key, value),
            },
            Request::Get {
                key,
                serializable: false,
            } => Response::Get {
                revision: self.revision,
                kv: self.kvs.get(key).cloned(),
            },
            Request::Get {
                key,
                serializable: true,
            } => {
                let lag = rng.below(4) as i64;
                let rev = (self.revision - lag).max(self.initial);
                Response::Get {
                    revision: rev,
                    kv: self.snapshots[(rev - self.initial) as usize]
                        .get(key)
                        .cloned(),
                }
            }
            Request::Delete { key } => {
                if self.kvs.remove(key).is_some() {
                    self.revision += 1;
                    self.snapshots.push(self.kvs.clone());
                    Response::Delete {
                        revision: self.revision,
                        deleted: 1,
                    }
                } else {
                    Response::Delete {
                        revision: self.revision,
                        deleted: 0,
                    }
                }
            }
            Request::Cas {
                key,
                expected_mod,
                value,
            } => {
                let current = self.kvs.get(key).map_or(0, |kv| kv.mod_revision);
                if current == *expected_mod {
                    Response::Cas {
                        revision: self.put(key, value),
                        succeeded: true,
                        kv: None,
                    }
                } else {
                    Response::Cas {
                        revision: self.revision,
                        succeeded: false,
                        kv: self.kvs.get(key).cloned(),
                    }
                }
            }
            _ => unreachable!("testgen issues single-key requests only"),
        }
    }

    fn mod_revision(&self, key: &str) -> i64 {
        self.kvs.get(key).map_or(0, |kv| kv.mod_revision)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Ok,
    Failed,
    UnknownApplied,
    UnknownLost,
}

enum Event {
    Ready(u64),
    Apply(usize),
    Complete(usize),
}

fn request(rng: &mut Rng, store: &Store, cfg: &GenConfig, id: usize) -> Request {
    let key = format!("k{}", rng.below(cfg.keys as u64));
    let value = match cfg.value_pool {
        0 => format!("v{id}"),
        n => format!("v{}", rng.below(n)),
    };
    match rng.below(100) {
        0..=24 => Request::Put { key, value },
        25..=49 => Request::Get {
            key,
            serializable: false,
        },
        50..=59 => Request::Get {
            key,
            serializable: true,
        },
        60..=69 => Request::Delete { key },
        _ => {
            let expected_mod = if rng.permille(700) {
                store.mod_revision(&key)
            } else {
                rng.below((store.revision + 1) as u64) as i64
            };
            Request::Cas {
                key,
                expected_mod,
                value,
            }
        }
    }
}

/// A valid history per the module docs.
pub(crate) fn generate(seed: u64, cfg: &GenConfig) -> History {
    let mut rng = Rng::new(seed);
    let mut store = Store::new(cfg.initial_revision);
    let mut history = History::new();
    let mut events: BTreeMap<(Time, u64), Event> = BTreeMap::new();
    let mut seq = 0u64;
    let mut schedule = |events: &mut BTreeMap<(Time, u64), Event>, t: Time, e: Event| {
        seq += 1;
        events.insert((t, seq), e);
    };
    for c in 0..cfg.clients {
        let t = rng.below(10);
        schedule(&mut events, t, Event::Ready(c as u64));
    }
    let mut fates = Vec::new();
    let mut responses: Vec<Option<Response>> = Vec::new();
    while let Some(((t, _), event)) = events.pop_first() {
        match event {
            Event::Ready(client) => {
                if history.len() >= cfg.ops {
                    continue;
                }
                let req = request(&mut rng, &store, cfg, history.len());
                let id = history.record_invoke(client, t, req);
                let duration = 1 + rng.below(40);
                let fate = if rng.permille(cfg.unknown_permille) {
                    if rng.permille(500) {
                        Fate::UnknownApplied
                    } else {
                        Fate::UnknownLost
                    }
                } else if rng.permille(cfg.failed_permille) {
                    Fate::Failed
                } else {
                    Fate::Ok
                };
                let apply_at = match fate {
                    Fate::Ok => Some(t + rng.below(duration + 1)),
                    Fate::UnknownApplied => {
                        let stretch = 1 + rng.below(20);
                        Some(t + rng.below(stretch * duration + 1))
                    }
                    Fate::Failed | Fate::UnknownLost => None,
                };
                if let Some(at) = apply_at {
                    schedule(&mut events, at, Event::Apply(id));
                }
                schedule(&mut events, t + duration, Event::Complete(id));
                fates.push(fate);
                responses.push(None);
            }
            Event::Apply(id) => {
                responses[id] = Some(store.apply(&history.ops[id].request, &mut rng));
            }
            Event::Complete(id) => {
                let outcome = match fates[id] {
                    Fate::Ok => {
                        Outcome::Ok(responses[id].take().expect("applied before completing"))
                    }
                    Fate::Failed => Outcome::Failed,
                    Fate::UnknownApplied | Fate::UnknownLost => Outcome::Unknown,
                };
                history.record_complete(id, t, outcome);
                let client = history.ops[id].client;
                let think = rng.below(5);
                schedule(&mut events, t + think, Event::Ready(client));
            }
        }
    }
    history
}
