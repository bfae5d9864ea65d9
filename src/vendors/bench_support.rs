//! Entry points for the adapter benchmarks (`cargo bench --bench adapters`), and for nothing
//! else: the request path never calls them.
//!
//! Each function runs one vendor's list translation — the very function its adapter calls on
//! the answer of that list call (read the vendor body, map every item, work out the next page)
//! — on a `200` answer with the given body, as the first page, for tenant [`TENANT`] and
//! connection [`CONNECTION`], without `raw`. They exist so a benchmark outside the crate
//! measures the production code, not a copy of it. Their signatures are meant to stay put when
//! the translation inside changes, so figures taken before and after an optimisation compare
//! the same work.

use bytes::Bytes;

use super::common::Mapper;
use super::{caac, chatcaptain, libredesk, llamadapro, VendorResponse};
use crate::api::model::Handle;
use crate::api::request::Output;
use crate::api::ApiError;

/// The tenant every translated ID belongs to.
pub const TENANT: &str = "bench";
/// The connection every translated object names.
pub const CONNECTION: &str = "bench";

fn mapper() -> Mapper {
    Mapper {
        tenant: TENANT.to_owned(),
        connection: CONNECTION.to_owned(),
        want_raw: false,
    }
}

fn ok(body: &Bytes) -> VendorResponse {
    VendorResponse {
        status: 200,
        body: body.clone(),
        ..VendorResponse::default()
    }
}

/// Libredesk `GET /api/v1/conversations/all` answer (page 1 of `limit`) → normalized page.
pub fn libredesk_conversations(body: &Bytes, limit: u32) -> Result<Output, ApiError> {
    libredesk::conversations_page(&mapper(), &ok(body), 1, limit)
}

/// Libredesk `GET /api/v1/contacts` answer (page 1 of `limit`) → normalized page.
pub fn libredesk_contacts(body: &Bytes, limit: u32) -> Result<Output, ApiError> {
    libredesk::contacts_page(&mapper(), &ok(body), 1, limit)
}

/// ChatCaptain `GET …/conversations` answer (the whole list) → the first window of `limit`.
pub fn chatcaptain_conversations(body: &Bytes, limit: u32) -> Result<Output, ApiError> {
    chatcaptain::conversations_window(&mapper(), &ok(body), None, 0, limit)
}

/// ChatCaptain `GET …/contacts?limit` answer → normalized page.
pub fn chatcaptain_contacts(body: &Bytes, limit: u32) -> Result<Output, ApiError> {
    chatcaptain::contacts_page(&mapper(), &ok(body), limit)
}

/// LlamadaPro `GET /api/v1/contacts` answer → normalized page.
pub fn llamadapro_contacts(body: &Bytes) -> Result<Output, ApiError> {
    llamadapro::contacts_page(&mapper(), &ok(body))
}

/// CAAC has no list call: its `contacts.list` is a lookup by handle answering one member.
/// One lookup answer (a member of channel `channel_id`) → a list of that member when it
/// carries `handle`, else an empty list. No `settings.member_types` table: a member's channel
/// comes from its LINE UID.
pub fn caac_contact_lookup(
    body: &Bytes,
    channel_id: i64,
    handle: &Handle,
) -> Result<Output, ApiError> {
    let lookup = caac::Lookup {
        channel_id,
        handle,
        path: "/openapi/v1/channels/{channel_id}/members/external/{external_member_id}",
    };
    caac::lookup_answer(&mapper(), &caac::MemberTypes::default(), &ok(body), lookup)
}

#[cfg(test)]
mod tests {
    //! The benchmark bodies in `bench/bodies/` (also served by `scripts/bench.sh`'s static
    //! vendor) must translate in full: a benchmark of an error path would measure nothing.
    use serde_json::{json, Value};

    use super::*;
    use crate::api::model::HandleChannel;
    use crate::api::request::Resource;

    fn body(path: &str) -> Bytes {
        let path = format!("{}/bench/bodies/{path}", env!("CARGO_MANIFEST_DIR"));
        Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
    }

    fn list(output: Output) -> (Vec<Resource>, Option<Value>) {
        match output {
            Output::List { data, next } => (data, next),
            other => panic!("not a list: {other:?}"),
        }
    }

    fn remote_ids(data: &[Resource]) -> Vec<String> {
        data.iter()
            .map(|r| match r {
                Resource::Contact(c) => c.remote_id.clone(),
                Resource::Conversation(c) => c.remote_id.clone(),
                Resource::PartialConversation(c) => c.conversation.remote_id.clone(),
                Resource::Message(m) => m.remote_id.clone(),
            })
            .collect()
    }

    fn distinct(ids: &[String]) -> usize {
        let mut ids = ids.to_vec();
        ids.sort();
        ids.dedup();
        ids.len()
    }

    #[test]
    fn libredesk_pages_translate_thirty_items_and_a_next_page() {
        let (data, next) =
            list(libredesk_conversations(&body("libredesk/conversations_page.json"), 30).unwrap());
        assert_eq!(distinct(&remote_ids(&data)), 30);
        assert_eq!(next, Some(json!({"page": 2})));
        let (data, next) =
            list(libredesk_contacts(&body("libredesk/contacts_page.json"), 30).unwrap());
        assert_eq!(distinct(&remote_ids(&data)), 30);
        assert_eq!(next, Some(json!({"page": 2})));
        match &data[0] {
            Resource::Contact(c) => {
                assert_eq!(c.phones, vec!["+449876500000".to_owned()]);
                assert!(c.id.starts_with("ct_"));
            }
            other => panic!("not a contact: {other:?}"),
        }
    }

    #[test]
    fn chatcaptain_lists_translate_thirty_items() {
        let body_ = body("chatcaptain/conversations.json");
        let (data, next) = list(chatcaptain_conversations(&body_, 30).unwrap());
        assert_eq!(distinct(&remote_ids(&data)), 30);
        assert_eq!(next, None, "the whole list fits one window");
        let (data, _) = list(chatcaptain_conversations(&body_, 20).unwrap());
        assert_eq!(data.len(), 20);
        let (data, next) =
            list(chatcaptain_contacts(&body("chatcaptain/contacts_page.json"), 30).unwrap());
        assert_eq!(distinct(&remote_ids(&data)), 30);
        assert!(next.is_some(), "a full page pages on");
    }

    #[test]
    fn llamadapro_page_translates_thirty_contacts() {
        let (data, next) =
            list(llamadapro_contacts(&body("llamadapro/contacts_page.json")).unwrap());
        assert_eq!(distinct(&remote_ids(&data)), 30);
        assert_eq!(next, Some(json!({"page_token": "Y29udGFjdHM6MzA"})));
    }

    #[test]
    fn caac_lookups_translate_each_of_thirty_members() {
        let members: Vec<Value> =
            serde_json::from_slice(&body("caac/members.json")).expect("an array of members");
        assert_eq!(members.len(), 30);
        let mut ids = Vec::new();
        for member in &members {
            let handle = Handle {
                channel: HandleChannel::Line,
                value: member["external_member_id"].as_str().unwrap().to_owned(),
            };
            let member = Bytes::from(serde_json::to_vec(member).unwrap());
            let (data, next) = list(caac_contact_lookup(&member, 12345, &handle).unwrap());
            assert_eq!(data.len(), 1);
            assert_eq!(next, None);
            ids.extend(remote_ids(&data));
        }
        assert_eq!(distinct(&ids), 30);
        let other = Handle {
            channel: HandleChannel::Line,
            value: "U0".to_owned(),
        };
        let (data, _) = list(caac_contact_lookup(&Bytes::from("{\"id\":1}"), 1, &other).unwrap());
        assert!(data.is_empty(), "a member without the handle is no match");
    }

    #[test]
    fn a_broken_body_is_a_bad_response_not_a_panic() {
        for result in [
            libredesk_conversations(&Bytes::from("{"), 30),
            chatcaptain_contacts(&Bytes::from("[]"), 30),
            llamadapro_contacts(&Bytes::from("null")),
        ] {
            let error = result.expect_err("a broken body");
            assert_eq!(error.code, crate::api::ErrorCode::VendorBadResponse);
        }
    }
}
