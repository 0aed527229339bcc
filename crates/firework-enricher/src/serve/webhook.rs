//! GitHub push webhooks: signature check and what each delivery means.
//!
//! The request body is checked against `X-Hub-Signature-256: sha256=<hex>`, an HMAC-SHA256
//! under the shared secret, compared in constant time. Only pushes to the configured branch
//! lead to a render; the repository comes from the configuration, never from the payload.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::publish::manifest::hex;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// Header carrying the event name.
pub const EVENT_HEADER: &str = "x-github-event";
/// Header carrying the delivery id.
pub const DELIVERY_HEADER: &str = "x-github-delivery";

/// How many delivery ids are remembered to recognise redeliveries.
const REMEMBERED_DELIVERIES: usize = 4096;

/// The shared webhook secret. Its `Debug` output never shows the value.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps a secret; an empty one is refused.
    pub fn new(value: impl Into<Vec<u8>>) -> Option<Secret> {
        let value = value.into();
        (!value.is_empty()).then_some(Secret(value))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A signature that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header.
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    /// A header that is malformed or does not match.
    #[error("invalid X-Hub-Signature-256 header")]
    Invalid,
}

/// Checks `header` (the value of `X-Hub-Signature-256`, if sent) against `body`.
pub fn verify_signature(
    secret: &Secret,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let Some(given) = header.strip_prefix("sha256=") else {
        return Err(SignatureError::Invalid);
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&secret.0) else {
        return Err(SignatureError::Invalid);
    };
    mac.update(body);
    let expected = hex(&mac.finalize().into_bytes());
    if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
        Ok(())
    } else {
        Err(SignatureError::Invalid)
    }
}

/// Computes the header value GitHub would send for `body`.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(&secret.0) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// What to do after a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// The pushed commit, when a render should run.
    pub render: Option<String>,
}

impl Decision {
    fn reply(status: u16, body: Value) -> Decision {
        Decision {
            status,
            body,
            render: None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    reference: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    deleted: bool,
}

/// Webhook handling shared by the HTTP server and the Lambda handler.
#[derive(Debug)]
pub struct WebhookCore {
    secret: Secret,
    branch: String,
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
}

/// Request headers as the core needs them, looked up case-insensitively by the caller.
#[derive(Debug, Clone, Default)]
pub struct WebhookHeaders {
    /// `X-Hub-Signature-256`.
    pub signature: Option<String>,
    /// `X-GitHub-Event`.
    pub event: Option<String>,
    /// `X-GitHub-Delivery`.
    pub delivery: Option<String>,
}

impl WebhookCore {
    /// A core that renders pushes to `branch`.
    pub fn new(secret: Secret, branch: impl Into<String>) -> WebhookCore {
        WebhookCore {
            secret,
            branch: branch.into(),
            seen: Mutex::new((HashSet::new(), VecDeque::new())),
        }
    }

    /// Decides what a delivery means.
    pub fn handle(&self, headers: &WebhookHeaders, body: &[u8]) -> Decision {
        if let Err(error) = verify_signature(&self.secret, headers.signature.as_deref(), body) {
            return Decision::reply(401, json!({ "error": error.to_string() }));
        }
        match headers.event.as_deref() {
            Some("push") => {}
            Some("ping") => {
                return Decision::reply(200, json!({"ignored": true, "reason": "ping"}));
            }
            _ => {
                return Decision::reply(
                    202,
                    json!({"ignored": true, "reason": "unsupported event type"}),
                );
            }
        }
        if let Some(id) = &headers.delivery
            && !self.remember(id)
        {
            return Decision::reply(200, json!({"deduped": true, "delivery_id": id}));
        }
        let payload: PushPayload = match serde_json::from_slice(body) {
            Ok(payload) => payload,
            Err(error) => {
                return Decision::reply(
                    400,
                    json!({"error": format!("invalid push payload: {error}")}),
                );
            }
        };
        let Some(reference) = payload.reference else {
            return Decision::reply(400, json!({"error": "invalid push payload: missing ref"}));
        };
        let Some(branch) = reference.strip_prefix("refs/heads/") else {
            return Decision::reply(
                200,
                json!({"ignored": true, "reason": "not a branch", "ref": reference}),
            );
        };
        if branch != self.branch {
            return Decision::reply(
                200,
                json!({"ignored": true, "reason": "non-target branch", "branch": branch, "target": self.branch}),
            );
        }
        if payload.deleted {
            return Decision::reply(
                200,
                json!({"ignored": true, "reason": "branch deleted", "branch": branch}),
            );
        }
        let after = payload.after.unwrap_or_default();
        Decision {
            status: 202,
            body: json!({"queued": true, "after": after}),
            render: Some(after),
        }
    }

    /// Records a delivery id; false when it was seen before.
    fn remember(&self, id: &str) -> bool {
        let mut guard = match self.seen.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (set, order) = &mut *guard;
        if !set.insert(id.to_string()) {
            return false;
        }
        order.push_back(id.to_string());
        if order.len() > REMEMBERED_DELIVERIES
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        true
    }
}
