//! The event settings of one config generation, validated: the `events:` block of the gateway
//! file, the `subscriptions:` of the connections file, and what each connection says about
//! its vendor's events — how a webhook is verified (`webhook_secret` for Libredesk,
//! `webhook_token` for CAAC's AI-agent call), the app's agent behind CAAC (`agent`), and the
//! poller for vendors without push (`poll`).
//!
//! ```yaml
//! tenants:
//!   acme:
//!     support:
//!       vendor: libredesk
//!       webhook_secret: ${ACME_LIBREDESK_WEBHOOK_SECRET}   # the secret set on the Libredesk webhook
//!     line:
//!       vendor: caac
//!       webhook_token: ${ACME_CAAC_AGENT_TOKEN}            # the bearer token configured in CAAC
//!       agent: {url: https://bot.acme.example/caac, secret: ${ACME_AGENT_SECRET}, timeout_ms: 20000}
//!     captain:
//!       vendor: chatcaptain
//!       poll: {interval_seconds: 30}                       # no push: list differences become events
//! ```
//!
//! Every error names file, key and reason and never quotes a secret. The whole value is
//! rebuilt on every reload and swapped with the snapshot, so a bad edit keeps the old one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::caac::{AgentFile, AgentSettings};
use super::model::{EventsFile, EventsSettings, Subscriptions, SubscriptionsFile};
use super::signing::{BearerToken, LibredeskSecret};
use crate::api::operation::Vendor;
use crate::config_error::ConfigError;

/// `poll:` of a connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollFile {
    pub interval_seconds: u64,
}

/// Longest poll interval accepted (a day).
const MAX_POLL_SECONDS: u64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSettings {
    pub interval: Duration,
}

/// How a connection's vendor pushes to `POST /hooks/{tenant}/{connection}`.
pub enum Intake {
    /// Libredesk webhooks, `sha256=` HMAC of the body under this secret.
    Libredesk(LibredeskSecret),
    /// CAAC's Self Hosted AI Agent call, `Authorization: Bearer <token>`, optionally bridged
    /// to the app's agent.
    Caac {
        token: BearerToken,
        agent: Option<AgentSettings>,
    },
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Intake::Libredesk(_) => f.write_str("Intake::Libredesk(<redacted>)"),
            Intake::Caac { agent, .. } => f
                .debug_struct("Intake::Caac")
                .field("token", &"<redacted>")
                .field("agent", &agent.as_ref().map(|a| a.url.as_str()))
                .finish(),
        }
    }
}

/// What one connection does with events.
#[derive(Debug)]
pub struct ConnectionEvents {
    pub intake: Option<Intake>,
    pub poll: Option<PollSettings>,
}

/// The event parts of one connection as written (borrowed from the connections file).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectionEventsRaw<'a> {
    pub webhook_secret: Option<&'a str>,
    pub webhook_token: Option<&'a str>,
    pub agent: Option<&'a AgentFile>,
    pub poll: Option<&'a PollFile>,
}

impl ConnectionEventsRaw<'_> {
    fn is_empty(&self) -> bool {
        self.webhook_secret.is_none()
            && self.webhook_token.is_none()
            && self.agent.is_none()
            && self.poll.is_none()
    }
}

/// One connection, as the builder needs it.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInput<'a> {
    pub tenant: &'a str,
    pub name: &'a str,
    pub vendor: Vendor,
    /// Whether the connection can list conversations (what a poller reads).
    pub can_list_conversations: bool,
    pub raw: ConnectionEventsRaw<'a>,
}

/// Every event setting of one config generation.
#[derive(Debug, Default)]
pub struct EventsConfig {
    /// `None`: no `events:` block, events are off.
    pub settings: Option<EventsSettings>,
    pub subscriptions: Arc<Subscriptions>,
    connections: HashMap<(String, String), Arc<ConnectionEvents>>,
}

impl EventsConfig {
    /// Validate everything. `gateway_file` holds `events:`; `connections_file` holds the
    /// connections and `subscriptions:`.
    pub fn try_build<'a>(
        gateway_file: &Path,
        events: Option<&EventsFile>,
        connections_file: &Path,
        subscriptions: &SubscriptionsFile,
        is_tenant: impl Fn(&str) -> bool,
        connections: impl IntoIterator<Item = ConnectionInput<'a>>,
    ) -> Result<EventsConfig, ConfigError> {
        let settings = events
            .map(|raw| EventsSettings::try_build(gateway_file, raw))
            .transpose()?;
        let subscriptions = Subscriptions::try_build(connections_file, subscriptions, is_tenant)?;
        if settings.is_none() && !subscriptions.is_empty() {
            return Err(ConfigError::new(
                connections_file,
                "subscriptions",
                format!(
                    "subscriptions need the `events:` block (data_dir) in {}",
                    gateway_file.display()
                ),
            ));
        }
        let mut built = HashMap::new();
        for input in connections {
            if input.raw.is_empty() {
                continue;
            }
            let key = format!("tenants.{}.{}", input.tenant, input.name);
            if settings.is_none() {
                return Err(ConfigError::new(
                    connections_file,
                    key,
                    format!(
                        "webhooks, agents and pollers need the `events:` block (data_dir) in {}",
                        gateway_file.display()
                    ),
                ));
            }
            let events = build_connection(connections_file, &key, &input)?;
            built.insert(
                (input.tenant.to_owned(), input.name.to_owned()),
                Arc::new(events),
            );
        }
        Ok(EventsConfig {
            settings,
            subscriptions: Arc::new(subscriptions),
            connections: built,
        })
    }

    pub fn connection(&self, tenant: &str, name: &str) -> Option<&Arc<ConnectionEvents>> {
        self.connections.get(&(tenant.to_owned(), name.to_owned()))
    }

    /// Every polled connection: `(tenant, connection, settings)`.
    pub fn pollers(&self) -> Vec<(String, String, PollSettings)> {
        let mut out: Vec<_> = self
            .connections
            .iter()
            .filter_map(|((t, c), e)| e.poll.map(|p| (t.clone(), c.clone(), p)))
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }
}

fn build_connection(
    file: &Path,
    key: &str,
    input: &ConnectionInput<'_>,
) -> Result<ConnectionEvents, ConfigError> {
    let err = |k: &str, reason: String| ConfigError::new(file, format!("{key}.{k}"), reason);
    let raw = &input.raw;
    let vendor = input.vendor;
    let no_push = |k: &str| {
        err(
            k,
            format!("{vendor} does not call the gateway with events; use `poll` for this vendor"),
        )
    };
    let intake = match vendor {
        Vendor::Libredesk => {
            if raw.webhook_token.is_some() {
                return Err(err(
                    "webhook_token",
                    "Libredesk signs its webhooks: set `webhook_secret`".to_owned(),
                ));
            }
            if raw.agent.is_some() {
                return Err(err(
                    "agent",
                    "an AI-agent bridge is a CAAC feature".to_owned(),
                ));
            }
            match raw.webhook_secret {
                Some(secret) => {
                    if raw.poll.is_some() {
                        return Err(err(
                            "poll",
                            "this connection receives webhooks (`webhook_secret`); poll only \
                             connections without them"
                                .to_owned(),
                        ));
                    }
                    Some(Intake::Libredesk(
                        LibredeskSecret::new(secret)
                            .map_err(|r| err("webhook_secret", r.to_owned()))?,
                    ))
                }
                None => None,
            }
        }
        Vendor::Caac => {
            if raw.webhook_secret.is_some() {
                return Err(err(
                    "webhook_secret",
                    "CAAC's AI-agent call carries a bearer token: set `webhook_token`".to_owned(),
                ));
            }
            match raw.webhook_token {
                Some(token) => {
                    let token =
                        BearerToken::new(token).map_err(|r| err("webhook_token", r.to_owned()))?;
                    let agent = raw
                        .agent
                        .map(|a| AgentSettings::try_build(file, &format!("{key}.agent"), a))
                        .transpose()?;
                    Some(Intake::Caac { token, agent })
                }
                None if raw.agent.is_some() => {
                    return Err(err(
                        "webhook_token",
                        "an `agent` needs the token CAAC sends (`webhook_token`)".to_owned(),
                    ))
                }
                None => None,
            }
        }
        Vendor::ChatCaptain | Vendor::LlamadaPro => {
            if raw.webhook_secret.is_some() {
                return Err(no_push("webhook_secret"));
            }
            if raw.webhook_token.is_some() {
                return Err(no_push("webhook_token"));
            }
            if raw.agent.is_some() {
                return Err(err(
                    "agent",
                    "an AI-agent bridge is a CAAC feature".to_owned(),
                ));
            }
            None
        }
    };
    let poll = match raw.poll {
        None => None,
        Some(p) => {
            if !input.can_list_conversations {
                return Err(err(
                    "poll",
                    format!(
                        "{vendor} cannot list conversations through this connection's routes, \
                         so there is nothing to poll"
                    ),
                ));
            }
            if !(1..=MAX_POLL_SECONDS).contains(&p.interval_seconds) {
                return Err(err(
                    "poll.interval_seconds",
                    format!("use 1 to {MAX_POLL_SECONDS}"),
                ));
            }
            Some(PollSettings {
                interval: Duration::from_secs(p.interval_seconds),
            })
        }
    };
    Ok(ConnectionEvents { intake, poll })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn events_file() -> EventsFile {
        serde_yaml::from_str("data_dir: data").unwrap()
    }

    fn build(
        events: Option<&EventsFile>,
        vendor: Vendor,
        raw: ConnectionEventsRaw<'_>,
    ) -> Result<EventsConfig, ConfigError> {
        EventsConfig::try_build(
            Path::new("switchboard.yaml"),
            events,
            Path::new("connections.yaml"),
            &SubscriptionsFile::new(),
            |t| t == "acme",
            [ConnectionInput {
                tenant: "acme",
                name: "desk",
                vendor,
                can_list_conversations: vendor != Vendor::Caac,
                raw,
            }],
        )
    }

    #[test]
    fn each_vendor_takes_only_its_own_intake_and_errors_name_the_key() {
        let events = events_file();
        let e = Some(&events);
        let ok = build(
            e,
            Vendor::Libredesk,
            ConnectionEventsRaw {
                webhook_secret: Some("a-libredesk-secret-0123"),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(matches!(
            ok.connection("acme", "desk").unwrap().intake,
            Some(Intake::Libredesk(_))
        ));
        let agent = AgentFile {
            url: "http://127.0.0.1:9/agent".into(),
            secret: AGENT_SECRET.into(),
            timeout_ms: 500,
            on_failure: Default::default(),
        };
        let caac = build(
            e,
            Vendor::Caac,
            ConnectionEventsRaw {
                webhook_token: Some("caac-token-0123456789"),
                agent: Some(&agent),
                ..Default::default()
            },
        )
        .unwrap();
        match &caac.connection("acme", "desk").unwrap().intake {
            Some(Intake::Caac { agent: Some(a), .. }) => {
                assert_eq!(a.timeout, Duration::from_millis(500))
            }
            other => panic!("{other:?}"),
        }
        let cases: Vec<(Option<&EventsFile>, Vendor, ConnectionEventsRaw<'_>, &str)> = vec![
            (
                None,
                Vendor::Libredesk,
                ConnectionEventsRaw {
                    webhook_secret: Some("a-libredesk-secret-0123"),
                    ..Default::default()
                },
                "tenants.acme.desk",
            ),
            (
                e,
                Vendor::Libredesk,
                ConnectionEventsRaw {
                    webhook_secret: Some("short"),
                    ..Default::default()
                },
                "tenants.acme.desk.webhook_secret",
            ),
            (
                e,
                Vendor::Libredesk,
                ConnectionEventsRaw {
                    webhook_token: Some("caac-token-0123456789"),
                    ..Default::default()
                },
                "tenants.acme.desk.webhook_token",
            ),
            (
                e,
                Vendor::ChatCaptain,
                ConnectionEventsRaw {
                    webhook_secret: Some("a-libredesk-secret-0123"),
                    ..Default::default()
                },
                "tenants.acme.desk.webhook_secret",
            ),
            (
                e,
                Vendor::Caac,
                ConnectionEventsRaw {
                    agent: Some(&agent),
                    ..Default::default()
                },
                "tenants.acme.desk.webhook_token",
            ),
            (
                e,
                Vendor::Caac,
                ConnectionEventsRaw {
                    poll: Some(&PollFile {
                        interval_seconds: 5,
                    }),
                    ..Default::default()
                },
                "tenants.acme.desk.poll",
            ),
            (
                e,
                Vendor::ChatCaptain,
                ConnectionEventsRaw {
                    poll: Some(&PollFile {
                        interval_seconds: 0,
                    }),
                    ..Default::default()
                },
                "tenants.acme.desk.poll.interval_seconds",
            ),
        ];
        for (events, vendor, raw, key) in cases {
            let error = build(events, vendor, raw).unwrap_err();
            assert_eq!(error.key, key, "{error}");
            assert!(!error.to_string().contains("0123"), "{error}");
        }
    }

    #[test]
    fn pollers_are_listed_with_their_interval() {
        let events = events_file();
        let config = build(
            Some(&events),
            Vendor::ChatCaptain,
            ConnectionEventsRaw {
                poll: Some(&PollFile {
                    interval_seconds: 7,
                }),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            config.pollers(),
            vec![(
                "acme".to_owned(),
                "desk".to_owned(),
                PollSettings {
                    interval: Duration::from_secs(7)
                }
            )]
        );
    }
}
