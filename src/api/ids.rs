//! Opaque object IDs.
//!
//! An ID carries everything needed to address the object without a lookup: the tenant and
//! connection that own it and every vendor key (CAAC needs channel_id + member_id; Libredesk
//! messages need the conversation uuid + the message uuid). The shape is
//! `<prefix>_<base64url(JSON array of strings)>`; callers must treat it as opaque.
//!
//! Decoding is strict: a wrong prefix, bad base64, bad JSON, or a key that is empty, too long,
//! a dot segment or has control characters all answer "not found". Anyone can build an ID, so
//! the keys are then checked against the grammar of the connection's vendor
//! ([`KeyGrammar`], declared by each adapter) before any vendor call: a malformed or hostile
//! ID never reaches a vendor.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Longest accepted encoded ID; anything longer is malformed by definition.
const MAX_ID_LEN: usize = 1024;
/// Longest vendor key of any vendor grammar.
const MAX_KEY_LEN: usize = 128;

/// The shape one vendor key must have before a vendor is asked about it. Each adapter declares
/// the grammar of its keys per kind of object (`Adapter::key_grammar`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyGrammar {
    /// A positive decimal integer: digits only, no sign, no leading zero, at most 18 digits
    /// (fits an i64 and every vendor's integer ids).
    PositiveInteger,
    /// A UUID in its 8-4-4-4-12 hexadecimal form (Libredesk conversations and messages).
    Uuid,
    /// An E.164 phone number: `+`, then 7 to 15 digits, the first not zero.
    E164,
    /// An opaque vendor string id: 1 to 128 characters of the URL-unreserved alphabet
    /// (RFC 3986 §2.3: `A–Z a–z 0–9 - . _ ~`), and not a dot segment (`.`, `..`). Every string
    /// id the vendors document or return (Firestore-style ids, hex object ids, `ctc_0001`)
    /// fits it, and it can never change the shape of a vendor path.
    Opaque,
    /// An E.164 number an ID carries only when it is known: allowed as the last keys of a
    /// grammar only, and then the ID may end before it (LlamadaPro: the business number a
    /// conversation runs on).
    OptionalE164,
}

impl KeyGrammar {
    pub fn accepts(self, key: &str) -> bool {
        let b = key.as_bytes();
        match self {
            KeyGrammar::PositiveInteger => {
                (1..=18).contains(&b.len()) && b[0] != b'0' && b.iter().all(u8::is_ascii_digit)
            }
            KeyGrammar::Uuid => {
                b.len() == 36
                    && b.iter().enumerate().all(|(i, c)| match i {
                        8 | 13 | 18 | 23 => *c == b'-',
                        _ => c.is_ascii_hexdigit(),
                    })
            }
            KeyGrammar::E164 | KeyGrammar::OptionalE164 => match b.split_first() {
                Some((b'+', digits)) => {
                    (7..=15).contains(&digits.len())
                        && digits[0] != b'0'
                        && digits.iter().all(u8::is_ascii_digit)
                }
                _ => false,
            },
            KeyGrammar::Opaque => {
                (1..=MAX_KEY_LEN).contains(&b.len())
                    && !b.iter().all(|c| *c == b'.')
                    && b.iter().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
                    })
            }
        }
    }
}

/// Whether `keys` are exactly the keys `grammar` describes, in order (the optional keys at
/// its end may be left out).
pub fn keys_match(grammar: &[KeyGrammar], keys: &[String]) -> bool {
    let optional = grammar
        .iter()
        .rev()
        .take_while(|g| **g == KeyGrammar::OptionalE164)
        .count();
    (grammar.len() - optional..=grammar.len()).contains(&keys.len())
        && grammar.iter().zip(keys).all(|(g, k)| g.accepts(k))
}

/// What no vendor key may be, whatever the vendor: empty, too long, a dot segment, or
/// containing a control character or a path separator.
fn plausible_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key != "."
        && key != ".."
        && !key.chars().any(|c| c.is_control() || c == '/' || c == '\\')
}

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

/// The opaque ID [`ObjectId::encode`] answers, from borrowed parts: what an adapter mints for
/// every object it translates, without copying the tenant and connection first.
///
/// The ID is the base64url of the parts as a compact JSON array of strings. A list translation
/// mints one or two per item (issue 11), so the array is written by hand, on the stack when it
/// fits, and a part with a character JSON escapes (a quote, a backslash, a control character:
/// no real key) is written by serde_json: the bytes are serde_json's either way.
pub fn encode_id(kind: Kind, tenant: &str, connection: &str, keys: &[&str]) -> String {
    let parts = || [tenant, connection].into_iter().chain(keys.iter().copied());
    let plain = parts().all(|part| !part.bytes().any(json_escaped));
    let len = 1 + parts().map(|part| part.len() + 3).sum::<usize>();
    let mut stack = [0u8; 256];
    let heap: Vec<u8>;
    let json: &[u8] = if plain && len <= stack.len() {
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            stack[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(b"[");
        for (i, part) in parts().enumerate() {
            put(if i == 0 { b"\"" } else { b",\"" });
            put(part.as_bytes());
            put(b"\"");
        }
        put(b"]");
        &stack[..at]
    } else {
        let all: Vec<&str> = parts().collect();
        // Serializing a Vec<&str> to JSON cannot fail.
        heap = serde_json::to_vec(&all).unwrap_or_default();
        &heap
    };
    let prefix = kind.prefix();
    let mut id = String::with_capacity(prefix.len() + 1 + json.len().div_ceil(3) * 4);
    id.push_str(prefix);
    id.push('_');
    URL_SAFE_NO_PAD.encode_string(json, &mut id);
    id
}

/// A byte serde_json writes escaped inside a string.
fn json_escaped(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
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
        let keys: Vec<&str> = self.keys.iter().map(String::as_str).collect();
        encode_id(self.kind, &self.tenant, &self.connection, &keys)
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
        if !parts[2..].iter().all(|k| plausible_key(k)) {
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
    fn ids_are_the_base64_of_serde_jsons_array_of_the_parts() {
        let long = "k".repeat(300);
        for keys in [
            &["1001"][..],
            &["0b8e5a3c-0001-4c1e-9a55-2f0c6f3b0001", "42"],
            &["a\"quote", "back\\slash", "tab\tnew\nline\u{1}"],
            &["é ü 中文 \u{7f} /"],
            &[""],
            &[],
            &[&long],
        ] {
            let mut all = vec!["demo", "libredesk"];
            all.extend_from_slice(keys);
            let json = serde_json::to_vec(&all).unwrap();
            let want = format!("ct_{}", URL_SAFE_NO_PAD.encode(json));
            assert_eq!(
                encode_id(Kind::Contact, "demo", "libredesk", keys),
                want,
                "{keys:?}"
            );
        }
    }

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

    #[test]
    fn hostile_keys_never_decode() {
        for key in [
            ".",
            "..",
            "a/b",
            "..\\x",
            "a\u{0}b",
            "line\nbreak",
            "tab\t",
            &"k".repeat(129),
        ] {
            let encoded = ObjectId::new(Kind::Contact, "t", "c", vec![key.to_owned()]).encode();
            assert_eq!(ObjectId::decode(Kind::Contact, &encoded), None, "{key:?}");
        }
    }

    #[test]
    fn key_grammars() {
        use KeyGrammar::*;
        let cases: &[(KeyGrammar, &str, bool)] = &[
            (PositiveInteger, "1", true),
            (PositiveInteger, "123456789012345678", true),
            (PositiveInteger, "1234567890123456789", false),
            (PositiveInteger, "0", false),
            (PositiveInteger, "012", false),
            (PositiveInteger, "-1", false),
            (PositiveInteger, "+1", false),
            (PositiveInteger, "1e3", false),
            (PositiveInteger, "", false),
            (Uuid, "8a2b3c4d-1111-4222-8333-944455556666", true),
            (Uuid, "8A2B3C4D-1111-4222-8333-944455556666", true),
            (Uuid, "8a2b3c4d111142228333944455556666", false),
            (Uuid, "8a2b3c4d-1111-4222-8333-94445555666g", false),
            (Uuid, "..", false),
            (E164, "+4915112345678", true),
            (E164, "+0015112345678", false),
            (E164, "4915112345678", false),
            (E164, "+49 151", false),
            (Opaque, "Qe1RkU3xTT8dWnY0pZ7c", true),
            (Opaque, "ctc_0001", true),
            (Opaque, "66a0c0de0000000000000003", true),
            (Opaque, "a.b~c-d", true),
            (Opaque, ".", false),
            (Opaque, "..", false),
            (Opaque, "...", false),
            (Opaque, "a/b", false),
            (Opaque, "a%2Fb", false),
            (Opaque, "a?b", false),
            (Opaque, "a b", false),
            (Opaque, "ü", false),
        ];
        for (grammar, key, ok) in cases {
            assert_eq!(grammar.accepts(key), *ok, "{grammar:?} {key:?}");
        }
        assert!(keys_match(
            &[Uuid, Uuid],
            &[
                "8a2b3c4d-1111-4222-8333-944455556666".into(),
                "8a2b3c4d-1111-4222-8333-944455556667".into()
            ]
        ));
        assert!(!keys_match(
            &[Uuid, Uuid],
            &["8a2b3c4d-1111-4222-8333-944455556666".into()]
        ));
        assert!(!keys_match(&[Uuid], &["1".into()]));
        // Optional keys at the end may be left out, but must fit when they are there.
        let grammar = [PositiveInteger, E164, OptionalE164];
        let keys = |k: &[&str]| k.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert!(keys_match(&grammar, &keys(&["7", "+56912345671"])));
        assert!(keys_match(
            &grammar,
            &keys(&["7", "+56912345671", "+56229145001"])
        ));
        assert!(!keys_match(&grammar, &keys(&["7", "+56912345671", "x"])));
        assert!(!keys_match(&grammar, &keys(&["7"])));
        assert!(!keys_match(
            &grammar,
            &keys(&["7", "+56912345671", "+56229145001", "+1555000000"])
        ));
    }
}
