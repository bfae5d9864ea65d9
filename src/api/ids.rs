//! Opaque object IDs.
//!
//! An ID carries everything needed to address the object without a lookup: the tenant and
//! connection that own it and every vendor key (CAAC needs channel_id + member_id; Libredesk
//! messages need the conversation uuid + the message uuid). The shape is
//! `<prefix>_<base64url(JSON array of strings)>`; callers must treat it as opaque.
//!
//! Decoding is strict: a wrong prefix, bad base64, bad JSON, or the wrong number of keys all
//! answer "not found", so a malformed ID never reaches a vendor.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Longest accepted encoded ID; anything longer is malformed by definition.
const MAX_ID_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Contact,
    Conversation,
    Message,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Contact => "ct",
            Kind::Conversation => "cv",
            Kind::Message => "msg",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Kind::Contact => "contact",
            Kind::Conversation => "conversation",
            Kind::Message => "message",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectId {
    pub kind: Kind,
    pub tenant: String,
    pub connection: String,
    /// Vendor keys, outermost first (e.g. conversation uuid, then message uuid).
    pub keys: Vec<String>,
}

impl ObjectId {
    pub fn new(kind: Kind, tenant: &str, connection: &str, keys: Vec<String>) -> Self {
        ObjectId {
            kind,
            tenant: tenant.to_owned(),
            connection: connection.to_owned(),
            keys,
        }
    }

    pub fn encode(&self) -> String {
        let mut parts: Vec<&str> = Vec::with_capacity(2 + self.keys.len());
        parts.push(&self.tenant);
        parts.push(&self.connection);
        parts.extend(self.keys.iter().map(String::as_str));
        // Serializing a Vec<&str> to JSON cannot fail.
        let json = serde_json::to_vec(&parts).unwrap_or_default();
        format!("{}_{}", self.kind.prefix(), URL_SAFE_NO_PAD.encode(json))
    }

    /// Decode an ID that must be of `kind`. `None` means malformed (answer 404).
    pub fn decode(kind: Kind, raw: &str) -> Option<ObjectId> {
        if raw.len() > MAX_ID_LEN {
            return None;
        }
        let body = raw.strip_prefix(kind.prefix())?.strip_prefix('_')?;
        let json = URL_SAFE_NO_PAD.decode(body).ok()?;
        let parts: Vec<String> = serde_json::from_slice(&json).ok()?;
        if parts.len() < 3 || parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        let mut parts = parts.into_iter();
        let tenant = parts.next()?;
        let connection = parts.next()?;
        Some(ObjectId {
            kind,
            tenant,
            connection,
            keys: parts.collect(),
        })
    }

    /// The single vendor key, for objects addressed by one key.
    pub fn key(&self, index: usize) -> Option<&str> {
        self.keys.get(index).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_several_keys() {
        let id = ObjectId::new(
            Kind::Message,
            "acme",
            "support",
            vec!["c-uuid".into(), "m-uuid".into()],
        );
        let encoded = id.encode();
        assert!(encoded.starts_with("msg_"));
        assert!(encoded
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        assert_eq!(ObjectId::decode(Kind::Message, &encoded), Some(id));
    }

    #[test]
    fn wrong_kind_is_rejected() {
        let encoded = ObjectId::new(Kind::Contact, "t", "c", vec!["1".into()]).encode();
        assert_eq!(ObjectId::decode(Kind::Conversation, &encoded), None);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for raw in [
            "",
            "ct_",
            "ct_!!!",
            "ct_e30",            // {} : not an array
            "ct_WyJhIl0",        // ["a"] : too few parts
            "ct_WyIiLCIiLCIiXQ", // empty parts
            "42",
        ] {
            assert_eq!(ObjectId::decode(Kind::Contact, raw), None, "{raw}");
        }
        assert_eq!(ObjectId::decode(Kind::Contact, &"ct_".repeat(600)), None);
    }
}
