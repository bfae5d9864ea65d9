//! Typed, borrowed reading of vendor answers (issue 11): wire structs deserialized straight
//! from the vendor's bytes, with no `serde_json::Value` tree in between.
//!
//! A wire struct names only the fields its translation reads; everything else in the body is
//! skipped by the parser without being built. Strings are [`Text`] (`Cow<str>`): borrowed from
//! the body when the JSON string has no escapes (the common case), unescaped into an owned
//! copy when it has — a plain `&str` field would fail on the first `\"` or `\u00e9` a vendor
//! sends. Serde only borrows a bare `Cow` field marked `#[serde(borrow)]`; an optional one
//! needs [`opt_text`], and a field whose absence means something other than its `null` needs
//! [`present`].
//!
//! `raw` is not read here: a translation builds it from a tree only when the caller asked
//! (`include=raw`, [`Mapper::raw_with`](super::Mapper::raw_with)), so the common request pays
//! nothing for it. [`raw_items`] is that tree for a list answer, item by item.
//!
//! Every failure is `vendor_bad_response` through [`wire::parse_wire`](super::wire::parse_wire)
//! or [`parse_body`]: a vendor body is untrusted input.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::wire::{bad_response, from_body};
use crate::api::operation::Vendor;
use crate::api::ApiError;

/// A string of a vendor answer: borrowed from the body when it can be, owned when the JSON
/// string had escapes.
pub(crate) type Text<'a> = Cow<'a, str>;

/// Read a whole vendor body into `T`, borrowing from `body`; a shape that does not fit is
/// `vendor_bad_response` naming `what` and serde's reason (line and column included, so a
/// truncated body says where it ends).
pub(crate) fn parse_body<'de, T: Deserialize<'de>>(
    vendor: Vendor,
    what: &str,
    body: &'de [u8],
) -> Result<T, ApiError> {
    from_body(body).map_err(|e| bad_response(vendor, format!("{what}: {e}")))
}

/// `deserialize_with` for a [`Text`] field that may be absent or `null` (use with
/// `#[serde(default)]`): `None` for `null`, the string borrowed when it can be. Anything but a
/// string or `null` is an error, as it is for `Option<String>`.
pub(crate) fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Text<'de>>, D::Error> {
    d.deserialize_option(OptTextVisitor)
}

/// `deserialize_with` for a required [`Text`] field outside a struct that serde's own
/// `#[serde(borrow)]` covers (a list of strings, a newtype).
pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Text<'de>, D::Error> {
    d.deserialize_str(TextVisitor)
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

struct OptTextVisitor;

impl<'de> Visitor<'de> for OptTextVisitor {
    type Value = Option<Text<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        text(d).map(Some)
    }
}

/// `deserialize_with` for a field whose absence and whose `null` mean different things (use
/// with `#[serde(default)]` on an `Option<Option<T>>`): absent → `None`, `null` →
/// `Some(None)`, a value → `Some(Some(v))`. Libredesk's `data.results` is the case: absent is
/// a broken answer, `null` an empty page (a Go nil slice).
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `deserialize_with` for a free-form object field (`custom_attributes`, `variables`): the
/// object's entries, or no entries when the vendor sent anything that is not an object —
/// the rule [`object_or_empty`](super::object_or_empty) applies to a tree. Only this field's
/// value is built as a tree; it is the caller's data and is passed through whole.
pub(crate) fn object_or_empty<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Map<String, Value>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(map) => map,
        _ => Map::new(),
    })
}

/// `deserialize_with` for a list of strings in which a vendor may put other things (`tags`;
/// use with `#[serde(default)]`): the strings in order, anything else skipped unbuilt; `null`
/// or a non-list is no strings. `None` only when the field is absent, so a translation can
/// tell "no tags" from "this answer does not say".
pub(crate) fn lenient_strings<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Text<'de>>>, D::Error> {
    d.deserialize_any(LenientStrings)
}

struct LenientStrings;

/// One item of a lenient list: a string, or anything else (skipped).
struct MaybeText<'de>(Option<Text<'de>>);

impl<'de> Deserialize<'de> for MaybeText<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeText<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeText(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeText(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(MaybeText(Some(Cow::Owned(v))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeText(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeText(None))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Visitor<'de> for LenientStrings {
    type Value = Option<Vec<Text<'de>>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(MaybeText(item)) = seq.next_element()? {
            out.extend(item);
        }
        Ok(Some(out))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Some(Vec::new()))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some(Vec::new()))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some(Vec::new()))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some(Vec::new()))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some(Vec::new()))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some(Vec::new()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Some(Vec::new()))
    }
}

/// The untouched items of a list answer, as trees, for `raw`: `pick` finds the list inside
/// the parsed body (`data.results`, `conversations`). Only called when the caller asked for
/// `raw`; the typed translation has already judged the body, so a list that is not there is
/// no items here (never a second, different error).
pub(crate) fn raw_items(body: &[u8], pick: impl FnOnce(Value) -> Option<Value>) -> Vec<Value> {
    match serde_json::from_slice::<Value>(body).ok().and_then(pick) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

/// The `raw` of item `index` of a list, moved out of `raws` ([`raw_items`]); `None` when the
/// caller did not ask for `raw` (`raws` is empty then).
pub(crate) fn take_raw(raws: &mut [Value], index: usize) -> Option<Value> {
    raws.get_mut(index).map(Value::take)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::ErrorCode;

    #[derive(Debug, Deserialize)]
    struct Wire<'a> {
        #[serde(borrow, deserialize_with = "text")]
        name: Text<'a>,
        #[serde(default, borrow, deserialize_with = "opt_text")]
        email: Option<Text<'a>>,
        #[serde(default, deserialize_with = "present")]
        results: Option<Option<Vec<i64>>>,
        #[serde(default, deserialize_with = "object_or_empty")]
        attributes: Map<String, Value>,
        #[serde(default, borrow, deserialize_with = "lenient_strings")]
        tags: Option<Vec<Text<'a>>>,
    }

    #[test]
    fn strings_borrow_from_the_body_unless_they_have_escapes() {
        let body = br#"{"name": "Ada", "email": "a\u00e9@example.com"}"#;
        let wire: Wire<'_> = parse_body(Vendor::Libredesk, "contact", body).unwrap();
        assert!(matches!(wire.name, Cow::Borrowed("Ada")));
        assert_eq!(wire.email.as_deref(), Some("aé@example.com"));
        assert!(matches!(wire.email, Some(Cow::Owned(_))));
        let wire: Wire<'_> = parse_body(
            Vendor::Libredesk,
            "contact",
            br#"{"name": "A", "email": null}"#,
        )
        .unwrap();
        assert_eq!(wire.email, None);
    }

    #[test]
    fn absent_and_null_are_told_apart_where_they_differ() {
        let read = |body: &'static [u8]| -> Option<Option<Vec<i64>>> {
            parse_body::<Wire<'_>>(Vendor::Libredesk, "page", body)
                .unwrap()
                .results
        };
        assert_eq!(read(br#"{"name": "x"}"#), None);
        assert_eq!(read(br#"{"name": "x", "results": null}"#), Some(None));
        assert_eq!(
            read(br#"{"name": "x", "results": [1]}"#),
            Some(Some(vec![1]))
        );
    }

    #[test]
    fn free_form_objects_and_lenient_lists_keep_what_fits() {
        let body = br#"{"name": "x", "attributes": {"plan": "pro"}, "tags": ["a", 1, {"b": 2}, [3], "c"]}"#;
        let wire: Wire<'_> = parse_body(Vendor::Libredesk, "x", body).unwrap();
        assert_eq!(Value::Object(wire.attributes), json!({"plan": "pro"}));
        assert_eq!(wire.tags.unwrap(), vec!["a", "c"]);
        for body in [
            &br#"{"name": "x", "attributes": [1], "tags": "a"}"#[..],
            br#"{"name": "x", "attributes": null, "tags": null}"#,
        ] {
            let wire: Wire<'_> = parse_body(Vendor::Libredesk, "x", body).unwrap();
            assert!(wire.attributes.is_empty());
            assert_eq!(wire.tags, Some(vec![]), "present, so known: no tags");
        }
        let wire: Wire<'_> = parse_body(Vendor::Libredesk, "x", br#"{"name": "x"}"#).unwrap();
        assert_eq!(wire.tags, None, "absent: not known");
    }

    #[test]
    fn wrong_types_missing_fields_and_truncated_bodies_are_bad_responses() {
        for (body, reason) in [
            (
                &br#"{"name": 1}"#[..],
                "invalid type: integer `1`, expected a string",
            ),
            (
                br#"{"name": "x", "email": 7}"#,
                "invalid type: integer `7`, expected a string",
            ),
            (br#"{"email": "a@b"}"#, "missing field `name`"),
            (br#"{"name": "Ad"#, "EOF while parsing"),
            (b"", "EOF while parsing"),
        ] {
            let err = parse_body::<Wire<'_>>(Vendor::ChatCaptain, "contact", body).unwrap_err();
            assert_eq!(err.code, ErrorCode::VendorBadResponse, "{body:?}");
            assert_eq!(err.vendor, Some(Vendor::ChatCaptain));
            assert!(
                err.detail.contains("contact: ") && err.detail.contains(reason),
                "{}",
                err.detail
            );
        }
    }

    #[test]
    fn raw_items_are_built_only_from_a_list_that_is_there() {
        let body = br#"{"data": {"results": [{"id": 1}, {"id": 2}]}}"#;
        let mut raws = raw_items(body, |v| v.get("data")?.get("results").cloned());
        assert_eq!(take_raw(&mut raws, 1), Some(json!({"id": 2})));
        assert_eq!(take_raw(&mut raws, 5), None);
        assert!(raw_items(b"{", Some).is_empty());
        assert!(raw_items(b"{}", |v| v.get("x").cloned()).is_empty());
    }
}
