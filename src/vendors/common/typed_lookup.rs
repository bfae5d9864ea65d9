//! Typed, borrowed reading of vendor answers (issue 11), as the CAAC and LlamadaPro adapters
//! use it: a wire struct is read straight from the vendor's bytes — no `serde_json::Value`
//! tree in between — and its text fields borrow from those bytes ([`Str`]) instead of being
//! copied. `raw` is built from the same bytes only when the caller asked for it
//! ([`VendorJson::tree`]).
//!
//! The translations take their input as a [`VendorJson`], so the request path hands them the
//! bytes that came off the socket while unit tests (and a translation of an object nested in
//! an answer already read) may hand them a parsed tree: one translation, two sources, the same
//! `vendor_bad_response` for a shape that does not fit either way.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::input::MAX_SAFE_INTEGER;
use super::vocab::non_empty;
use super::wire::{bad_response, from_body};
use crate::api::operation::Vendor;
use crate::api::ApiError;

/// A vendor object's JSON: the vendor's bytes, or a tree already parsed from them.
pub(crate) trait VendorJson<'a>: Copy {
    /// Read `what` (a member, a page, …) into its wire struct; a shape that does not fit is
    /// `vendor_bad_response` naming `what` and serde's reason.
    fn wire<T: Deserialize<'a>>(self, vendor: Vendor, what: &str) -> Result<T, ApiError>;

    /// The whole object as a tree, for `raw`: call it only when the caller asked for `raw`
    /// (through [`Mapper::raw_with`](super::Mapper::raw_with)). Bytes that a wire struct was
    /// read from always parse; anything else is `null` rather than a panic.
    fn tree(self) -> Value;
}

impl<'a> VendorJson<'a> for &'a Value {
    fn wire<T: Deserialize<'a>>(self, vendor: Vendor, what: &str) -> Result<T, ApiError> {
        T::deserialize(self).map_err(|e| bad_response(vendor, format!("{what}: {e}")))
    }

    fn tree(self) -> Value {
        self.clone()
    }
}

impl<'a> VendorJson<'a> for &'a [u8] {
    fn wire<T: Deserialize<'a>>(self, vendor: Vendor, what: &str) -> Result<T, ApiError> {
        from_body(self).map_err(|e| bad_response(vendor, format!("{what}: {e}")))
    }

    fn tree(self) -> Value {
        serde_json::from_slice(self).unwrap_or(Value::Null)
    }
}

/// A JSON string of a vendor answer, borrowed from the body when it has no escapes (nearly
/// always), owned otherwise. Anything but a string is a type error, so a wire field of this
/// type enforces the vendor's "string" the way `String` would, without the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl Str<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'a> From<&'a str> for Str<'a> {
    fn from(s: &'a str) -> Self {
        Str(Cow::Borrowed(s))
    }
}

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// An optional string field as it came (untrimmed; blank included).
pub(crate) fn opt_str<'s>(field: &'s Option<Str<'_>>) -> Option<&'s str> {
    field.as_ref().map(Str::as_str)
}

/// A 2xx body that must be one JSON object, checked by its first byte only: the wire struct
/// read next checks the rest. (A derived struct would also accept an array of its fields.)
pub(crate) fn object_body(vendor: Vendor, body: &[u8]) -> Result<&[u8], ApiError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(body),
        _ => Err(bad_response(vendor, "the answer is not a JSON object")),
    }
}

/// The text with content of an optional string field: trimmed, `None` when absent or blank.
pub(crate) fn text<'s>(field: &'s Option<Str<'_>>) -> Option<&'s str> {
    non_empty(field.as_ref().map(Str::as_str))
}

/// [`text`], owned: what a normalized object keeps.
pub(crate) fn owned_text(field: &Option<Str<'_>>) -> Option<String> {
    text(field).map(str::to_owned)
}

/// A field a vendor documents as a number but may also write as a numeric string (LlamadaPro's
/// ids are `number <double>`, and its search answers them as strings), read without deciding
/// yet whether it is one: [`Loose::key`] does that. Absent and `null` are kept apart from a
/// value of another type so an error can say what came.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Loose<'a> {
    /// The field was not there (use with `#[serde(default)]`).
    #[default]
    Missing,
    Null,
    Number(f64),
    Text(Str<'a>),
    /// A boolean, an array or an object.
    Other,
}

impl Loose<'_> {
    /// The value as a positive integer key in decimal: `42`, `42.0` and `"42"` are all `"42"`;
    /// `None` for anything that is not a positive integer a double holds exactly.
    pub(crate) fn key(&self) -> Option<String> {
        let n = match self {
            Loose::Number(n) => *n,
            Loose::Text(s) => s.as_str().trim().parse::<f64>().ok()?,
            _ => return None,
        };
        (n.fract() == 0.0 && (1.0..=MAX_SAFE_INTEGER).contains(&n)).then(|| format!("{}", n as u64))
    }

    /// The value when it is a string with content.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Loose::Text(s) => non_empty(Some(s.as_str())),
            _ => None,
        }
    }
}

impl fmt::Display for Loose<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loose::Missing | Loose::Null => f.write_str("null"),
            Loose::Number(n) => write!(f, "{n}"),
            Loose::Text(s) => write!(f, "{:?}", s.as_str()),
            Loose::Other => f.write_str("a value that is neither a number nor a string"),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LooseVisitor;
        impl<'de> Visitor<'de> for LooseVisitor {
            type Value = Loose<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Loose::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Loose::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Loose::Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Loose::Number(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Loose::Number(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Loose::Text(Str(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Loose::Text(Str(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Loose::Text(Str(Cow::Owned(v))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
        }
        deserializer.deserialize_any(LooseVisitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::api::ErrorCode;

    #[derive(Debug, Deserialize)]
    struct Wire<'a> {
        #[serde(borrow)]
        name: Option<Str<'a>>,
        #[serde(borrow, default)]
        id: Loose<'a>,
    }

    #[test]
    fn strings_borrow_from_the_bytes_unless_escaped() {
        let body = br#"{"name": "Ada", "id": "7"}"#.as_slice();
        let wire: Wire<'_> = body.wire(Vendor::Caac, "x").unwrap();
        assert!(matches!(wire.name, Some(Str(Cow::Borrowed("Ada")))));
        assert_eq!(wire.id.key().as_deref(), Some("7"));
        let escaped = br#"{"name": "A\u0064a"}"#.as_slice();
        let wire: Wire<'_> = escaped.wire(Vendor::Caac, "x").unwrap();
        assert_eq!(text(&wire.name), Some("Ada"));
        assert_eq!(wire.id, Loose::Missing);
    }

    #[test]
    fn a_tree_reads_the_same_as_its_bytes() {
        let tree = json!({"name": "  Ada ", "id": 42.0});
        let from_tree: Wire<'_> = (&tree).wire(Vendor::LlamadaPro, "x").unwrap();
        let bytes = serde_json::to_vec(&tree).unwrap();
        let from_bytes: Wire<'_> = bytes.as_slice().wire(Vendor::LlamadaPro, "x").unwrap();
        assert_eq!(from_tree.name, from_bytes.name);
        assert_eq!(from_tree.id, from_bytes.id);
        assert_eq!(owned_text(&from_tree.name).as_deref(), Some("Ada"));
        assert_eq!(from_tree.id.key().as_deref(), Some("42"));
        assert_eq!(bytes.as_slice().tree(), tree);
        assert_eq!(b"{".as_slice().tree(), Value::Null);
    }

    #[test]
    fn loose_numbers_are_keys_only_when_positive_integers() {
        for (value, key) in [
            (json!(42), Some("42")),
            (json!(42.0), Some("42")),
            (json!(" 42 "), Some("42")),
            (json!(42.5), None),
            (json!(0), None),
            (json!(-3), None),
            (json!(1e300), None),
            (json!("abc"), None),
            (json!(null), None),
            (json!(true), None),
            (json!([1]), None),
            (json!({"id": 1}), None),
        ] {
            let tree = json!({ "id": value });
            let wire: Wire<'_> = (&tree).wire(Vendor::LlamadaPro, "x").unwrap();
            assert_eq!(wire.id.key().as_deref(), key, "{value}");
        }
        assert_eq!(Loose::Number(42.5).to_string(), "42.5");
        assert_eq!(Loose::Null.to_string(), "null");
        assert_eq!(Loose::Text(Str("x".into())).to_string(), "\"x\"");
    }

    #[test]
    fn shapes_that_do_not_fit_are_bad_responses_naming_what() {
        for body in [
            r#"{"name": 3}"#,
            r#"{"name": ["Ada"]}"#,
            r#"{"name": "Ada""#,
            r#"[]"#,
            "",
        ] {
            let err = body
                .as_bytes()
                .wire::<Wire<'_>>(Vendor::Caac, "member")
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::VendorBadResponse, "{body}");
            assert!(err.detail.contains("member: "), "{}", err.detail);
        }
    }
}
