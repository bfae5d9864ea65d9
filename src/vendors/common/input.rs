//! What a caller sends, checked the same way for every vendor before any vendor call:
//! `vendor_fields`, the vendor keys inside an ID, and the vendor state inside a cursor.

use serde_json::{Map, Value};

use crate::api::ids::{keys_match, ObjectId};
use crate::api::operation::Vendor;
use crate::api::request::Page;
use crate::api::ApiError;
use crate::vendors::{Adapter, CallContext};

/// Largest integer a JSON double holds exactly: a double beyond it is no id.
pub(crate) const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

// ----- vendor_fields ---------------------------------------------------------------------------

/// `vendor_fields` keys an operation reads; any other key is a caller's typo, refused rather
/// than silently dropped (`what` names the operation's resource: "contacts", "messages").
pub(crate) fn check_vendor_fields(
    vendor: Vendor,
    fields: &Map<String, Value>,
    known: &[&str],
    what: &str,
) -> Result<(), ApiError> {
    match fields.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(ApiError::invalid(format!(
            "vendor_fields.{unknown} is not a {vendor} field for {what}; known: {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ))),
        None => Ok(()),
    }
}

/// A positive integer vendor field (`inbox_id`, `channel_id`, `funnelId`): a JSON integer, an
/// integral double (`7.0`; LlamadaPro's ids are doubles), or a string of digits (defaults may
/// come from `${ENV}`). `None` when absent or `null`.
pub(crate) fn int_field(name: &str, value: Option<&Value>) -> Result<Option<i64>, ApiError> {
    let n = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER)
                .map(|f| f as i64)
        }),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    n.filter(|n| *n > 0).map(Some).ok_or_else(|| {
        ApiError::invalid(format!("vendor_fields.{name} must be a positive integer"))
    })
}

/// A vendor field the call cannot do without is in neither the request's `vendor_fields` nor
/// the connection's `defaults`: 400 naming it, saying what it is (`what`) and where to set it.
pub(crate) fn missing_field(vendor: Vendor, name: &str, what: &str) -> ApiError {
    ApiError::invalid(format!(
        "{vendor} needs vendor_fields.{name} ({what}); set it in the connection's defaults or \
         pass it in vendor_fields"
    ))
}

/// A required positive integer vendor field ([`int_field`]): the request's `fields`, else the
/// connection's `defaults` ([`CallContext::vendor_field`]); absent is [`missing_field`].
pub(crate) fn required_int(
    ctx: &CallContext<'_>,
    fields: &Map<String, Value>,
    name: &str,
    what: &str,
) -> Result<i64, ApiError> {
    int_field(name, ctx.vendor_field(name, fields))?
        .ok_or_else(|| missing_field(ctx.vendor(), name, what))
}

/// A required text vendor field ([`text_field`]), like [`required_int`].
pub(crate) fn required_text(
    ctx: &CallContext<'_>,
    fields: &Map<String, Value>,
    name: &str,
    what: &str,
) -> Result<String, ApiError> {
    text_field(name, ctx.vendor_field(name, fields))?
        .ok_or_else(|| missing_field(ctx.vendor(), name, what))
}

/// A non-empty text vendor field, trimmed (a number is written as text). `None` when absent
/// or `null`.
pub(crate) fn text_field(name: &str, value: Option<&Value>) -> Result<Option<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(ApiError::invalid(format!(
            "vendor_fields.{name} must be a non-empty string"
        ))),
    }
}

/// `assignee.user_id` or `assignee.team_id` (`field`) as the vendor's positive integer id.
pub(crate) fn assignee_id(vendor: Vendor, field: &str, id: &str) -> Result<i64, ApiError> {
    let id = id.trim().parse::<i64>().ok().filter(|n| *n > 0);
    id.ok_or_else(|| {
        let kind = if field == "team_id" { "team" } else { "user" };
        ApiError::invalid(format!(
            "assignee.{field} must be a {vendor} {kind} id (a positive integer)"
        ))
    })
}

// ----- IDs -------------------------------------------------------------------------------------

/// An ID that is not one of ours, or not this vendor's: 404, and no vendor call.
pub(crate) fn no_such(id: &ObjectId) -> ApiError {
    ApiError::not_found(format!("no such {}", id.kind.noun()))
}

/// The `N` vendor keys of `id`, when they are exactly what `adapter` declares for the ID's kind
/// ([`Adapter::key_grammar`]); anything else is [`no_such`]. The gateway checks the same
/// grammar before it routes, so this only refuses an ID that reached the adapter some other
/// way; one table, so the two can never disagree.
pub(crate) fn keys<'i, const N: usize>(
    adapter: &dyn Adapter,
    id: &'i ObjectId,
) -> Result<[&'i str; N], ApiError> {
    if !keys_match(adapter.key_grammar(id.kind), &id.keys) {
        return Err(no_such(id));
    }
    let keys: Vec<&str> = id.keys.iter().map(String::as_str).collect();
    keys.try_into().map_err(|_| no_such(id))
}

/// An integer key of `id` (one its grammar declares a positive integer) as a number.
pub(crate) fn int_key(id: &ObjectId, key: &str) -> Result<i64, ApiError> {
    key.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| no_such(id))
}

// ----- cursors ---------------------------------------------------------------------------------

/// A number a vendor pages by (`{"page": n}`, `{"offset": n}`) from the cursor: `first` without
/// a cursor; a cursor without `key`, or with a number below `first`, is not one of `what`'s
/// cursors (400).
pub(crate) fn cursor_number(
    page: &Page,
    key: &str,
    first: u64,
    what: &str,
) -> Result<u64, ApiError> {
    match &page.cursor {
        None => Ok(first),
        Some(state) => state
            .get(key)
            .and_then(Value::as_u64)
            .filter(|n| *n >= first)
            .ok_or_else(|| ApiError::invalid(format!("cursor is not a {what} cursor"))),
    }
}

/// A token a vendor pages by (`{"page_token": …}`, `{"before": …}`) from the cursor: `None`
/// without a cursor; a cursor without a non-blank `key` is not one of `what`'s cursors (400).
pub(crate) fn cursor_text(page: &Page, key: &str, what: &str) -> Result<Option<String>, ApiError> {
    match &page.cursor {
        None => Ok(None),
        Some(state) => state
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(|s| Some(s.to_owned()))
            .ok_or_else(|| ApiError::invalid(format!("cursor is not a {what} cursor"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::ids::Kind;
    use crate::api::ErrorCode;
    use crate::vendors::adapter_for;

    #[test]
    fn unknown_vendor_fields_are_refused_by_name() {
        let fields = json!({"funnelId": 1, "inbox_id": 2});
        let fields = fields.as_object().unwrap();
        let err = check_vendor_fields(Vendor::LlamadaPro, fields, &["funnelId"], "conversations")
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert_eq!(
            err.detail,
            "vendor_fields.inbox_id is not a llamadapro field for conversations; known: funnelId"
        );
        let err =
            check_vendor_fields(Vendor::ChatCaptain, fields, &[], "conversations").unwrap_err();
        assert!(err.detail.ends_with("known: none"), "{}", err.detail);
        check_vendor_fields(Vendor::Caac, fields, &["funnelId", "inbox_id"], "x").unwrap();
    }

    #[test]
    fn a_missing_field_says_where_to_set_it() {
        let err = missing_field(Vendor::Libredesk, "inbox_id", "the id of an email inbox");
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert_eq!(
            err.detail,
            "libredesk needs vendor_fields.inbox_id (the id of an email inbox); set it in the \
             connection's defaults or pass it in vendor_fields"
        );
    }

    #[test]
    fn integer_fields_take_integers_integral_doubles_and_digit_strings() {
        for (value, n) in [
            (json!(3), 3),
            (json!(7.0), 7),
            (json!(" 501 "), 501),
            (json!("7"), 7),
        ] {
            assert_eq!(int_field("x", Some(&value)).unwrap(), Some(n), "{value}");
        }
        assert_eq!(int_field("x", None).unwrap(), None);
        assert_eq!(int_field("x", Some(&Value::Null)).unwrap(), None);
        for bad in [
            json!(0),
            json!(-1),
            json!(3.5),
            json!(1e300),
            json!("x"),
            json!("7.0"),
            json!([3]),
            json!(true),
        ] {
            let err = int_field("inbox_id", Some(&bad)).unwrap_err();
            assert_eq!(
                err.detail, "vendor_fields.inbox_id must be a positive integer",
                "{bad}"
            );
        }
    }

    #[test]
    fn assignees_are_positive_integer_ids() {
        assert_eq!(assignee_id(Vendor::Caac, "user_id", " 501 ").unwrap(), 501);
        for bad in ["0", "-3", "ana", "1.5", ""] {
            let err = assignee_id(Vendor::Libredesk, "team_id", bad).unwrap_err();
            assert_eq!(
                err.detail,
                "assignee.team_id must be a libredesk team id (a positive integer)"
            );
        }
    }

    #[test]
    fn text_fields_are_trimmed_and_numbers_are_text() {
        assert_eq!(
            text_field("x", Some(&json!(" de "))).unwrap().as_deref(),
            Some("de")
        );
        assert_eq!(
            text_field("x", Some(&json!(42))).unwrap().as_deref(),
            Some("42")
        );
        assert_eq!(text_field("x", None).unwrap(), None);
        for bad in [json!(""), json!(" "), json!(true), json!({})] {
            assert!(text_field("language", Some(&bad)).is_err(), "{bad}");
        }
    }

    fn object_id(kind: Kind, keys: &[&str]) -> ObjectId {
        ObjectId::new(
            kind,
            "acme",
            "c",
            keys.iter().map(|k| k.to_string()).collect(),
        )
    }

    #[test]
    fn keys_follow_the_adapters_grammar_or_are_no_such_object() {
        let caac = adapter_for(Vendor::Caac);
        let id = object_id(Kind::Contact, &["1201", "30001"]);
        assert_eq!(keys::<2>(caac, &id).unwrap(), ["1201", "30001"]);
        assert_eq!(int_key(&id, "30001").unwrap(), 30001);
        for bad in [&["1201"][..], &["1201", "0"], &["x", "1"], &["1", "2", "3"]] {
            let err = keys::<2>(caac, &object_id(Kind::Contact, bad)).unwrap_err();
            assert_eq!(err.code, ErrorCode::NotFound, "{bad:?}");
            assert_eq!(err.detail, "no such contact");
        }
        // The grammar fits, but the caller asked for another number of keys.
        assert!(keys::<1>(caac, &id).is_err());
        let libredesk = adapter_for(Vendor::Libredesk);
        let uuid = "7d692b95-73dc-4f53-9343-6ed47a3db903";
        let id = object_id(Kind::Conversation, &[uuid]);
        assert_eq!(keys::<1>(libredesk, &id).unwrap(), [uuid]);
        assert!(keys::<1>(libredesk, &object_id(Kind::Conversation, &["c1"])).is_err());
    }

    #[test]
    fn cursors_carry_the_vendor_state_or_are_refused() {
        let page = |cursor: Option<Value>| Page { limit: 20, cursor };
        assert_eq!(cursor_number(&page(None), "page", 1, "x").unwrap(), 1);
        assert_eq!(
            cursor_number(&page(Some(json!({"page": 3}))), "page", 1, "x").unwrap(),
            3
        );
        assert_eq!(
            cursor_number(&page(Some(json!({"offset": 0}))), "offset", 0, "x").unwrap(),
            0
        );
        for bad in [
            json!({"page": 0}),
            json!({"page": "2"}),
            json!({"offset": 2}),
        ] {
            let err =
                cursor_number(&page(Some(bad.clone())), "page", 1, "libredesk page").unwrap_err();
            assert_eq!(err.detail, "cursor is not a libredesk page cursor", "{bad}");
        }
        assert_eq!(cursor_text(&page(None), "before", "x").unwrap(), None);
        assert_eq!(
            cursor_text(&page(Some(json!({"before": "2025-01-07"}))), "before", "x")
                .unwrap()
                .as_deref(),
            Some("2025-01-07")
        );
        for bad in [json!({"before": " "}), json!({"before": 1}), json!({})] {
            assert!(
                cursor_text(&page(Some(bad.clone())), "before", "x").is_err(),
                "{bad}"
            );
        }
    }
}
