//! The example requests `switchboard demo` prints as curl lines: per vendor, calls that work
//! against a demo connection served by that vendor's sandbox, built from the sandbox's seed
//! data (its IDs, names and handles).

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::api::ids::{Kind, ObjectId};
use crate::api::operation::Vendor;
use crate::snapshot::Connection;

/// Example normalized-API requests for a demo connection, using the seed data of the
/// vendor's sandbox.
pub fn demo_requests(conn: &Connection) -> Vec<DemoRequest> {
    match conn.vendor {
        Vendor::Libredesk => libredesk(conn),
        Vendor::ChatCaptain => chatcaptain(conn),
        Vendor::Caac => caac(conn),
        Vendor::LlamadaPro => llamadapro(conn),
    }
}

/// An example request against a demo connection, printed as a curl line.
#[derive(Debug, Clone)]
pub struct DemoRequest {
    pub method: &'static str,
    /// Path and query, e.g. `/v1/conversations?status=open`.
    pub path: String,
    pub body: Option<serde_json::Value>,
    /// Send `X-Connection` (list and create calls).
    pub select: bool,
}

impl DemoRequest {
    pub fn to_curl(&self, api: &str, connection: &str) -> String {
        let mut line = String::from("curl -s");
        if self.method != "GET" {
            let _ = write!(line, " -X {}", self.method);
        }
        let _ = write!(
            line,
            " 'http://{api}{}' -H \"Authorization: Bearer $TOKEN\"",
            self.path
        );
        if self.select {
            let _ = write!(line, " -H 'X-Connection: {connection}'");
        }
        if let Some(body) = &self.body {
            let _ = write!(line, " -H 'Content-Type: application/json' -d '{body}'");
        }
        line
    }
}

/// An opaque ID of a demo object, for curl lines.
pub fn demo_id(conn: &Connection, kind: Kind, keys: &[&str]) -> String {
    ObjectId::new(
        kind,
        &conn.tenant,
        &conn.name,
        keys.iter().map(|k| (*k).to_owned()).collect(),
    )
    .encode()
}

/// One example request; `select`: it names its connection with `X-Connection` (list and create calls).
fn request(method: &'static str, path: String, body: Option<Value>, select: bool) -> DemoRequest {
    DemoRequest {
        method,
        path,
        body,
        select,
    }
}

/// Requests that work against a demo connection served by the libredesk sandbox (seed IDs).
fn libredesk(conn: &Connection) -> Vec<DemoRequest> {
    use crate::sandbox::libredesk::seed;
    let contact = demo_id(conn, Kind::Contact, &[&seed::CONTACT_ADA_ID.to_string()]);
    let conversation = demo_id(conn, Kind::Conversation, &[seed::CONVERSATION_OPEN_UUID]);
    vec![
        request("GET", "/v1/contacts?limit=5".to_owned(), None, true),
        request("GET", "/v1/contacts?q=ada".to_owned(), None, true),
        request("GET", format!("/v1/contacts/{contact}"), None, false),
        request(
            "GET",
            "/v1/conversations?status=open".to_owned(),
            None,
            true,
        ),
        request(
            "GET",
            format!("/v1/conversations/{conversation}"),
            None,
            false,
        ),
        request(
            "GET",
            format!("/v1/conversations/{conversation}/messages"),
            None,
            false,
        ),
        // A vendor call the normalized API does not cover, with the connection's credentials.
        request(
            "GET",
            format!("/v1/passthrough/{}/api/v1/agents", conn.name),
            None,
            false,
        ),
        request(
            "POST",
            "/v1/messages".to_owned(),
            Some(
                json!({ "conversation_id": conversation, "text": "Thanks Ada, a corrected invoice is on its way." }),
            ),
            false,
        ),
        request(
            "PATCH",
            format!("/v1/conversations/{conversation}"),
            Some(json!({ "status": "resolved" })),
            false,
        ),
    ]
}

/// Requests that work against a demo connection served by the chatcaptain sandbox (seed IDs).
fn chatcaptain(conn: &Connection) -> Vec<DemoRequest> {
    use crate::sandbox::chatcaptain::seed;
    let contact = demo_id(conn, Kind::Contact, &[seed::CONTACT_ANNA_ID]);
    let conversation = demo_id(conn, Kind::Conversation, &[seed::CONVERSATION_ANNA_ID]);
    vec![
        request("GET", "/v1/contacts?limit=10".to_owned(), None, true),
        request("GET", "/v1/contacts?q=anna".to_owned(), None, true),
        request("GET", format!("/v1/contacts/{contact}"), None, false),
        request(
            "GET",
            "/v1/conversations?status=open".to_owned(),
            None,
            true,
        ),
        request(
            "GET",
            format!("/v1/conversations/{conversation}/messages"),
            None,
            false,
        ),
        request(
            "POST",
            "/v1/messages".to_owned(),
            Some(json!({
                "conversation_id": conversation,
                "text": "Hallo Anna, die Sendungsnummer schicke ich Ihnen gleich."
            })),
            false,
        ),
        request(
            "PATCH",
            format!("/v1/conversations/{conversation}"),
            Some(json!({ "status": "resolved" })),
            false,
        ),
    ]
}

/// Requests that work against a demo connection served by the caac sandbox (seed IDs).
fn caac(conn: &Connection) -> Vec<DemoRequest> {
    use crate::sandbox::caac::seed;
    let keys = |member: i64| [seed::CHANNEL_LINE_ID.to_string(), member.to_string()];
    let weiting = keys(seed::MEMBER_WEITING_ID);
    let weiting = [weiting[0].as_str(), weiting[1].as_str()];
    let somchai = keys(seed::MEMBER_SOMCHAI_ID);
    let somchai = [somchai[0].as_str(), somchai[1].as_str()];
    let contact = demo_id(conn, Kind::Contact, &weiting);
    let conversation = demo_id(conn, Kind::Conversation, &weiting);
    let somchai_conversation = demo_id(conn, Kind::Conversation, &somchai);
    vec![
        request(
            "GET",
            format!("/v1/contacts?handle=line:{}", seed::MEMBER_WEITING_UID),
            None,
            true,
        ),
        request("GET", format!("/v1/contacts/{contact}"), None, false),
        request(
            "GET",
            format!("/v1/conversations/{conversation}"),
            None,
            false,
        ),
        request(
            "POST",
            "/v1/messages".to_owned(),
            Some(json!({
                "conversation_id": conversation,
                "text": "Your parcel left our warehouse this morning.",
            })),
            false,
        ),
        request(
            "PATCH",
            format!("/v1/conversations/{somchai_conversation}"),
            Some(json!({ "assignee": { "user_id": seed::USER_PLOY_ID.to_string() } })),
            false,
        ),
        request(
            "PATCH",
            format!("/v1/conversations/{conversation}"),
            Some(json!({ "status": "resolved" })),
            false,
        ),
        request(
            "POST",
            "/v1/contacts".to_owned(),
            Some(json!({ "handles": [{ "channel": "line", "value": seed::UNUSED_LINE_UID }] })),
            true,
        ),
    ]
}

/// Requests that work against a demo connection served by the llamadapro sandbox (seed IDs).
fn llamadapro(conn: &Connection) -> Vec<DemoRequest> {
    use crate::sandbox::llamadapro::seed;
    let valentina = seed::CONTACT_VALENTINA_ID.to_string();
    let conversation_id = seed::CONVERSATION_VALENTINA_ID.to_string();
    let contact = demo_id(conn, Kind::Contact, &[&valentina]);
    let conversation = demo_id(
        conn,
        Kind::Conversation,
        &[&conversation_id, seed::CONTACT_VALENTINA_WHATSAPP],
    );
    let message = demo_id(
        conn,
        Kind::Message,
        &[
            seed::MESSAGE_VALENTINA_IMAGE_ID,
            &conversation_id,
            seed::CONTACT_VALENTINA_WHATSAPP,
        ],
    );
    let whatsapp = seed::CONTACT_VALENTINA_WHATSAPP.replace('+', "%2B");
    vec![
        request("GET", "/v1/contacts?limit=5".to_owned(), None, true),
        request(
            "GET",
            format!("/v1/contacts?handle=whatsapp:{whatsapp}"),
            None,
            true,
        ),
        request("GET", "/v1/contacts?q=valentina".to_owned(), None, true),
        request("GET", format!("/v1/contacts/{contact}"), None, false),
        request("GET", format!("/v1/messages/{message}"), None, false),
        request(
            "POST",
            "/v1/contacts".to_owned(),
            Some(json!({
                "name": "Lucía Herrera",
                "emails": ["lucia@example.cl"],
                "handles": [{"channel": "whatsapp", "value": "+56987654321"}],
                "custom_fields": {"source": "demo"},
            })),
            true,
        ),
        request(
            "POST",
            "/v1/conversations".to_owned(),
            Some(json!({ "contact_id": contact })),
            true,
        ),
        request(
            "POST",
            "/v1/messages".to_owned(),
            Some(json!({
                "conversation_id": conversation,
                "text": "¡Hola Valentina! Ya revisamos tu factura.",
            })),
            false,
        ),
        request(
            "POST",
            "/v1/messages".to_owned(),
            Some(json!({
                "conversation_id": conversation,
                "template": {"name": seed::TEMPLATE_WELCOME, "language": "es", "variables": ["Valentina", "Ventas"]},
            })),
            false,
        ),
    ]
}
