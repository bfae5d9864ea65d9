//! [`Mapper`]: what a translation needs to turn one vendor object into a normalized one.

use serde_json::Value;

use crate::api::ids::{encode_id, Kind};
use crate::vendors::CallContext;

/// What a translation needs from the call context: who owns the IDs it mints, and whether the
/// caller asked for `raw`. Owned, so adapters never hold the context across a vendor call.
#[derive(Debug, Clone)]
pub(crate) struct Mapper {
    pub(crate) tenant: String,
    pub(crate) connection: String,
    pub(crate) want_raw: bool,
}

impl Mapper {
    pub(crate) fn new(ctx: &CallContext<'_>) -> Self {
        Mapper {
            tenant: ctx.connection.tenant.clone(),
            connection: ctx.connection.name.clone(),
            want_raw: ctx.want_raw,
        }
    }

    /// A new opaque ID of this connection.
    pub(crate) fn id(&self, kind: Kind, keys: Vec<String>) -> String {
        match keys.as_slice() {
            [a] => self.id_of(kind, &[a]),
            [a, b] => self.id_of(kind, &[a, b]),
            [a, b, c] => self.id_of(kind, &[a, b, c]),
            _ => {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                self.id_of(kind, &keys)
            }
        }
    }

    /// Like [`Mapper::id`], from borrowed keys: no copies on the way to the encoded ID (a list
    /// translation mints one or two per item).
    pub(crate) fn id_of(&self, kind: Kind, keys: &[&str]) -> String {
        encode_id(kind, &self.tenant, &self.connection, keys)
    }

    /// The untouched vendor object, only when the caller asked for it.
    pub(crate) fn raw(&self, value: &Value) -> Option<Value> {
        self.want_raw.then(|| value.clone())
    }

    /// Like [`Mapper::raw`], building the value only when it is wanted: the form a
    /// translation from typed, borrowed wire structs uses, so `raw` costs nothing unless asked.
    pub(crate) fn raw_with(&self, value: impl FnOnce() -> Value) -> Option<Value> {
        self.want_raw.then(value)
    }
}
