//! What every adapter needs, written once: reading vendor answers into typed wire structs
//! ([`wire`]), minting normalized objects ([`Mapper`]) and the words they share ([`vocab`]),
//! checking what a caller sends ([`input`]: `vendor_fields`, ID keys, cursors), phone numbers
//! in E.164 ([`phone`]), and the const helpers the adapters' tables are built with ([`spec`]).
//!
//! The rule for what lives here: logic that is the same for every vendor that uses it. A
//! vendor's own vocabulary (its status words, its envelope, its error body) stays in its
//! adapter; the helpers here take that vocabulary as data. Two adapters that disagree on a
//! shared question (how a phone number reads, which words mean "read") get one answer here.
//!
//! Typed, borrowed parsing (issue 11): [`wire::parse_wire`] reads either a parsed tree or the
//! vendor's bytes into any `Deserialize` type (borrowed fields included) and reports
//! `vendor_bad_response` the same way for every vendor; [`typed`] has the field helpers wire
//! structs borrow their strings with and the `raw` trees built only on demand, and
//! [`Mapper::raw_with`] builds `raw` only when the caller asked for it.

pub(crate) mod attachment;
pub(crate) mod input;
pub(crate) mod mapper;
pub(crate) mod phone;
pub(crate) mod spec;
pub(crate) mod typed;
pub(crate) mod typed_lookup;
pub(crate) mod vocab;
pub(crate) mod wire;

pub(crate) use input::{
    assignee_id, check_vendor_fields, cursor_number, cursor_text, int_field, int_key, keys,
    missing_field, no_such, required_int, required_text, text_field,
};
pub(crate) use mapper::Mapper;
pub(crate) use spec::{ep, filter, filter_via, not_served, op};
pub(crate) use vocab::{
    attachment_type, join_name, message_status, non_empty, object_or_empty, owned_non_empty,
    split_name, split_names,
};
pub(crate) use wire::{bad_response, check_status, error_text, parse_json, parse_wire};
