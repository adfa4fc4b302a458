//! Push webhooks: is this delivery a genuine push notification from the git host?
//!
//! Owns: the three hook dialects drover accepts ([`Provider`]), checking a
//! delivery's authentication (GitHub's `X-Hub-Signature-256` HMAC, GitLab's
//! `X-Gitlab-Token`, and a generic HMAC over a timestamp and the body), refusing
//! replays ([`Replays`]), and the verdict the shell answers with ([`Verdict`]).
//! Must not: read the clock, the network or the secret's file; the shell hands in
//! the headers, the body, the secret and the time.
//!
//! A hook only says "fetch now": it never names the commit to apply. drover still
//! fetches the branch and checks what it finds (signatures, approval), so a valid
//! hook can at worst cause an early fetch. Fail closed all the same: a delivery
//! without the authentication its dialect requires is refused, never accepted.

use std::collections::VecDeque;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The dialect of a hook, from its path (`/hooks/<provider>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`,
    /// `X-GitHub-Event`, `X-GitHub-Delivery`.
    GitHub,
    /// GitLab: `X-Gitlab-Token: <secret>`, `X-Gitlab-Event`, and
    /// `X-Gitlab-Event-UUID` when the GitLab is new enough to send it.
    GitLab,
    /// Any other sender: `X-Drover-Timestamp: <unix seconds>` and
    /// `X-Drover-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`.
    Generic,
}

impl Provider {
    /// The provider a hook path names: `/hooks/github`, `/hooks/gitlab`,
    /// `/hooks/generic`.
    pub fn from_path(path: &str) -> Option<Provider> {
        match path.strip_prefix("/hooks/")? {
            "github" => Some(Provider::GitHub),
            "gitlab" => Some(Provider::GitLab),
            "generic" => Some(Provider::Generic),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Generic => "generic",
        }
    }
}

/// Why a delivery was refused (answered 401, or 413 for [`Refusal::TooLarge`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The header that authenticates the dialect is absent.
    Unsigned { header: &'static str },
    /// The header is there but its form is not the dialect's.
    Malformed { header: &'static str, why: String },
    /// The signature or token does not match the secret.
    BadSignature,
    /// The generic dialect's timestamp is further from now than [`MAX_SKEW_SECONDS`].
    Stale { age_seconds: i64 },
    /// A delivery already accepted (same delivery id, or for the generic dialect the
    /// same signature) came again.
    Replay { delivery: String },
    /// The body is larger than [`MAX_BODY_BYTES`].
    TooLarge,
}

impl Refusal {
    /// The `result` label of the delivery counter.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Unsigned { .. } => "unsigned",
            Refusal::Malformed { .. } => "malformed",
            Refusal::BadSignature => "bad_signature",
            Refusal::Stale { .. } => "stale",
            Refusal::Replay { .. } => "replay",
            Refusal::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Unsigned { header } => write!(f, "unsigned: no {header} header"),
            Refusal::Malformed { header, why } => write!(f, "malformed {header}: {why}"),
            Refusal::BadSignature => f.write_str("the signature does not match the secret"),
            Refusal::Stale { age_seconds } => write!(
                f,
                "the timestamp is {age_seconds} s from now, more than {MAX_SKEW_SECONDS} s"
            ),
            Refusal::Replay { delivery } => {
                write!(f, "delivery {delivery} was already accepted (a replay)")
            }
            Refusal::TooLarge => write!(f, "the body is larger than {MAX_BODY_BYTES} bytes"),
        }
    }
}

/// What to do with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authentic and a push: fetch now.
    Fetch { delivery: Option<String> },
    /// Authentic but not a push (GitHub's `ping`, a tag or issue event): answer 2xx,
    /// do not fetch.
    Ignore { event: String },
    /// Not authentic: answer 401 and count it.
    Refuse(Refusal),
}

impl Verdict {
    /// The `result` label of the delivery counter.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Fetch { .. } => "accepted",
            Verdict::Ignore { .. } => "ignored",
            Verdict::Refuse(r) => r.label(),
        }
    }
}

/// The largest body drover reads (GitHub caps payloads at 25 MB; a push of a few
/// hundred commits is well under this, and drover never needs the body's content).
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// How far the generic dialect's timestamp may be from drover's clock.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// How many accepted delivery ids are remembered to refuse replays.
pub const REMEMBERED_DELIVERIES: usize = 1024;

/// One delivery as the shell received it. Header names are matched without regard
/// to case.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub provider: Provider,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// A header as a delivery carries it: absent, once, or more than once (which is
/// not one value, so it is refused rather than one of them picked).
enum Header<'a> {
    Absent,
    One(&'a str),
    Many,
}

impl Delivery<'_> {
    fn header(&self, name: &str) -> Header<'_> {
        let mut found = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        match (found.next(), found.next()) {
            (None, _) => Header::Absent,
            (Some(v), None) => Header::One(v),
            (Some(_), Some(_)) => Header::Many,
        }
    }
}

/// The delivery ids drover accepted most recently; a repeat is a replay. Bounded:
/// the oldest id is forgotten first.
#[derive(Debug, Default, Clone)]
pub struct Replays {
    seen: VecDeque<String>,
}

impl Replays {
    fn contains(&self, id: &str) -> bool {
        self.seen.iter().any(|s| s == id)
    }

    fn remember(&mut self, id: String) {
        if self.seen.len() == REMEMBERED_DELIVERIES {
            self.seen.pop_front();
        }
        self.seen.push_back(id);
    }
}

/// Checks one delivery against `secret` at `now` (unix seconds), remembering an
/// accepted delivery's id in `replays`. An empty secret accepts nothing.
pub fn check(delivery: &Delivery<'_>, secret: &[u8], now: i64, replays: &mut Replays) -> Verdict {
    if delivery.body.len() > MAX_BODY_BYTES {
        return Verdict::Refuse(Refusal::TooLarge);
    }
    if secret.is_empty() {
        return Verdict::Refuse(Refusal::BadSignature);
    }
    let authenticated = match delivery.provider {
        Provider::GitHub => github(delivery, secret),
        Provider::GitLab => gitlab(delivery, secret),
        Provider::Generic => generic(delivery, secret, now),
    };
    let (delivery_id, event) = match authenticated {
        Ok(found) => found,
        Err(r) => return Verdict::Refuse(r),
    };
    if let Some(id) = &delivery_id {
        let key = format!("{}:{id}", delivery.provider.as_str());
        if replays.contains(&key) {
            return Verdict::Refuse(Refusal::Replay {
                delivery: id.clone(),
            });
        }
        replays.remember(key);
    }
    match event {
        Some(e) if !is_push(delivery.provider, &e) => Verdict::Ignore { event: e },
        _ => Verdict::Fetch {
            delivery: delivery_id,
        },
    }
}

fn is_push(provider: Provider, event: &str) -> bool {
    match provider {
        Provider::GitHub => event == "push",
        Provider::GitLab => event == "Push Hook",
        Provider::Generic => true,
    }
}

type Authenticated = Result<(Option<String>, Option<String>), Refusal>;

fn twice(header: &'static str) -> Refusal {
    Refusal::Malformed {
        header,
        why: "sent more than once".into(),
    }
}

fn required<'a>(d: &'a Delivery<'_>, header: &'static str) -> Result<&'a str, Refusal> {
    match d.header(header) {
        Header::Absent => Err(Refusal::Unsigned { header }),
        Header::Many => Err(twice(header)),
        Header::One(v) => Ok(v),
    }
}

/// An id or event name: short, printable.
fn optional(d: &Delivery<'_>, header: &'static str) -> Result<Option<String>, Refusal> {
    match d.header(header) {
        Header::Absent => Ok(None),
        Header::Many => Err(twice(header)),
        Header::One(v) if v.is_empty() || v.len() > 200 || v.chars().any(char::is_control) => {
            Err(Refusal::Malformed {
                header,
                why: "empty, longer than 200 bytes or not printable".into(),
            })
        }
        Header::One(v) => Ok(Some(v.to_string())),
    }
}

/// `sha256=<64 hex digits>` → the 32 bytes.
fn sha256_hex(header: &'static str, value: &str) -> Result<Vec<u8>, Refusal> {
    let hex_part = value.strip_prefix("sha256=").ok_or(Refusal::Malformed {
        header,
        why: "does not start with sha256=".into(),
    })?;
    match hex::decode(hex_part) {
        Ok(b) if b.len() == 32 => Ok(b),
        _ => Err(Refusal::Malformed {
            header,
            why: "not 64 hexadecimal digits after sha256=".into(),
        }),
    }
}

/// Constant-time: `Mac::verify_slice` compares in constant time.
fn hmac_matches(secret: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(tag).is_ok()
}

fn github(d: &Delivery<'_>, secret: &[u8]) -> Authenticated {
    const SIG: &str = "X-Hub-Signature-256";
    let tag = sha256_hex(SIG, required(d, SIG)?)?;
    if !hmac_matches(secret, &[d.body], &tag) {
        return Err(Refusal::BadSignature);
    }
    let event = optional(d, "X-GitHub-Event")?;
    // GitHub sends a delivery id with every hook; without one a replay could not be
    // told apart, so its absence is a malformed delivery.
    let id = optional(d, "X-GitHub-Delivery")?.ok_or(Refusal::Malformed {
        header: "X-GitHub-Delivery",
        why: "absent; GitHub sends one with every delivery".into(),
    })?;
    Ok((Some(id), event))
}

fn gitlab(d: &Delivery<'_>, secret: &[u8]) -> Authenticated {
    let token = required(d, "X-Gitlab-Token")?;
    // Compare HMACs of both, so the comparison is constant-time whatever the lengths.
    let expected = {
        let mut m = Hmac::<Sha256>::new_from_slice(b"drover gitlab token").expect("any key");
        m.update(secret);
        m.finalize().into_bytes()
    };
    if !hmac_matches(b"drover gitlab token", &[token.as_bytes()], &expected) {
        return Err(Refusal::BadSignature);
    }
    let event = optional(d, "X-Gitlab-Event")?;
    Ok((optional(d, "X-Gitlab-Event-UUID")?, event))
}

fn generic(d: &Delivery<'_>, secret: &[u8], now: i64) -> Authenticated {
    const SIG: &str = "X-Drover-Signature";
    const TS: &str = "X-Drover-Timestamp";
    let tag = sha256_hex(SIG, required(d, SIG)?)?;
    let ts_text = required(d, TS)?;
    let ts: i64 = ts_text
        .parse()
        .ok()
        .filter(|_| ts_text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(Refusal::Malformed {
            header: TS,
            why: "not unix seconds".into(),
        })?;
    if !hmac_matches(secret, &[ts_text.as_bytes(), b".", d.body], &tag) {
        return Err(Refusal::BadSignature);
    }
    let age = now.saturating_sub(ts);
    if age.abs() > MAX_SKEW_SECONDS {
        return Err(Refusal::Stale { age_seconds: age });
    }
    // The signature is unique per timestamp and body: it is the delivery's id.
    Ok((Some(hex::encode(&tag)), None))
}

/// The generic dialect's signature header value for `body` at `timestamp`, for
/// senders written in Rust and for tests.
pub fn sign_generic(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// GitHub's `X-Hub-Signature-256` value for `body`, for tests and senders.
pub fn sign_github(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
