//! (temporary) history types
pub type Time = u64;
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Put {
        key: String,
        value: String,
    },
    Get {
        key: String,
        serializable: bool,
    },
    Delete {
        key: String,
    },
    Cas {
        key: String,
        expected_mod: i64,
        value: String,
    },
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyState {
    pub value: String,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Put {
        revision: i64,
    },
    Get {
        revision: i64,
        kv: Option<KeyState>,
    },
    Delete {
        revision: i64,
        deleted: i64,
    },
    Cas {
        revision: i64,
        succeeded: bool,
        kv: Option<KeyState>,
    },
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok(Response),
    Failed,
    Unknown,
}
#[derive(Clone, Debug)]
pub struct Operation {
    pub id: usize,
    pub client: u64,
    pub invoke: Time,
    pub complete: Option<Time>,
    pub request: Request,
    pub outcome: Outcome,
}
#[derive(Default, Clone, Debug)]
pub struct History {
    pub ops: Vec<Operation>,
}
