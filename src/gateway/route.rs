//! Matching a method and path to a normalized operation. Pure and allocation-light: called
//! for every request.

use http::Method;

use crate::api::operation::Operation;

/// What a request path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    OpenApi,
    Capabilities,
    /// An operation; `id` is the path's `{id}` segment, when the route has one.
    Operation {
        op: Operation,
        id: Option<&'a str>,
    },
}

/// Why no route matched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoRoute {
    /// No such path.
    #[error("no such route")]
    NotFound,
    /// The path exists, with other methods.
    #[error("method not allowed; allowed: {0}")]
    MethodNotAllowed(&'static str),
}

/// Match `method` + `path` (no query string). A trailing slash is not accepted: one spelling
/// per resource keeps logs and metrics unambiguous.
pub fn match_route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, NoRoute> {
    use Operation as O;
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let pick = |get: Option<O>, post: Option<O>, patch: Option<O>, delete: Option<O>, allow| {
        let op = match *method {
            Method::GET | Method::HEAD => get,
            Method::POST => post,
            Method::PATCH => patch,
            Method::DELETE => delete,
            _ => None,
        };
        op.ok_or(NoRoute::MethodNotAllowed(allow))
    };
    let route = match segments.as_slice() {
        ["openapi.json"] => {
            return match *method {
                Method::GET | Method::HEAD => Ok(Route::OpenApi),
                _ => Err(NoRoute::MethodNotAllowed("GET, HEAD")),
            }
        }
        ["v1", "capabilities"] => {
            return match *method {
                Method::GET | Method::HEAD => Ok(Route::Capabilities),
                _ => Err(NoRoute::MethodNotAllowed("GET, HEAD")),
            }
        }
        ["v1", "contacts"] => (
            pick(
                Some(O::ContactsList),
                Some(O::ContactsCreate),
                None,
                None,
                "GET, HEAD, POST",
            )?,
            None,
        ),
        ["v1", "contacts", id] if !id.is_empty() => (
            pick(
                Some(O::ContactsGet),
                None,
                Some(O::ContactsUpdate),
                Some(O::ContactsDelete),
                "GET, HEAD, PATCH, DELETE",
            )?,
            Some(*id),
        ),
        ["v1", "conversations"] => (
            pick(
                Some(O::ConversationsList),
                Some(O::ConversationsCreate),
                None,
                None,
                "GET, HEAD, POST",
            )?,
            None,
        ),
        ["v1", "conversations", id] if !id.is_empty() => (
            pick(
                Some(O::ConversationsGet),
                None,
                Some(O::ConversationsUpdate),
                Some(O::ConversationsDelete),
                "GET, HEAD, PATCH, DELETE",
            )?,
            Some(*id),
        ),
        ["v1", "conversations", id, "messages"] if !id.is_empty() => (
            pick(Some(O::MessagesList), None, None, None, "GET, HEAD")?,
            Some(*id),
        ),
        ["v1", "messages"] => (
            pick(
                Some(O::MessagesList),
                Some(O::MessagesSend),
                None,
                None,
                "GET, HEAD, POST",
            )?,
            None,
        ),
        ["v1", "messages", id] if !id.is_empty() => (
            pick(Some(O::MessagesGet), None, None, None, "GET, HEAD")?,
            Some(*id),
        ),
        _ => return Err(NoRoute::NotFound),
    };
    Ok(Route::Operation {
        op: route.0,
        id: route.1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_route_is_an_error_that_says_what_is_allowed() {
        let e: Box<dyn std::error::Error> = Box::new(NoRoute::MethodNotAllowed("GET, POST"));
        assert_eq!(e.to_string(), "method not allowed; allowed: GET, POST");
        assert_eq!(NoRoute::NotFound.to_string(), "no such route");
    }

    #[test]
    fn every_operation_has_a_route() {
        let cases = [
            (Method::GET, "/v1/contacts", Operation::ContactsList, None),
            (
                Method::POST,
                "/v1/contacts",
                Operation::ContactsCreate,
                None,
            ),
            (
                Method::GET,
                "/v1/contacts/x",
                Operation::ContactsGet,
                Some("x"),
            ),
            (
                Method::PATCH,
                "/v1/contacts/x",
                Operation::ContactsUpdate,
                Some("x"),
            ),
            (
                Method::DELETE,
                "/v1/contacts/x",
                Operation::ContactsDelete,
                Some("x"),
            ),
            (
                Method::GET,
                "/v1/conversations",
                Operation::ConversationsList,
                None,
            ),
            (
                Method::POST,
                "/v1/conversations",
                Operation::ConversationsCreate,
                None,
            ),
            (
                Method::GET,
                "/v1/conversations/c",
                Operation::ConversationsGet,
                Some("c"),
            ),
            (
                Method::PATCH,
                "/v1/conversations/c",
                Operation::ConversationsUpdate,
                Some("c"),
            ),
            (
                Method::DELETE,
                "/v1/conversations/c",
                Operation::ConversationsDelete,
                Some("c"),
            ),
            (
                Method::GET,
                "/v1/conversations/c/messages",
                Operation::MessagesList,
                Some("c"),
            ),
            (Method::GET, "/v1/messages", Operation::MessagesList, None),
            (Method::POST, "/v1/messages", Operation::MessagesSend, None),
            (
                Method::GET,
                "/v1/messages/m",
                Operation::MessagesGet,
                Some("m"),
            ),
        ];
        for (method, path, op, id) in cases {
            assert_eq!(
                match_route(&method, path),
                Ok(Route::Operation { op, id }),
                "{method} {path}"
            );
        }
        assert_eq!(
            match_route(&Method::GET, "/v1/capabilities"),
            Ok(Route::Capabilities)
        );
        assert_eq!(
            match_route(&Method::GET, "/openapi.json"),
            Ok(Route::OpenApi)
        );
    }

    #[test]
    fn unknown_paths_and_methods() {
        assert_eq!(
            match_route(&Method::GET, "/v1/nope"),
            Err(NoRoute::NotFound)
        );
        assert_eq!(
            match_route(&Method::GET, "/v1/contacts/"),
            Err(NoRoute::NotFound)
        );
        assert_eq!(
            match_route(&Method::GET, "/v1/contacts/a/b"),
            Err(NoRoute::NotFound)
        );
        assert_eq!(
            match_route(&Method::PUT, "/v1/contacts/a"),
            Err(NoRoute::MethodNotAllowed("GET, HEAD, PATCH, DELETE"))
        );
        assert_eq!(
            match_route(&Method::POST, "/v1/capabilities"),
            Err(NoRoute::MethodNotAllowed("GET, HEAD"))
        );
        assert_eq!(
            match_route(&Method::HEAD, "/v1/capabilities"),
            Ok(Route::Capabilities)
        );
        assert_eq!(
            match_route(&Method::HEAD, "/openapi.json"),
            Ok(Route::OpenApi)
        );
    }
}
