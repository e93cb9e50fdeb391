//! The inbound endpoint: `POST /inbound/SOURCE`, where an HRIS posts its change notifications
//! (Merge, HiBob, BambooHR; see the README's provider sections). A notification is verified
//! with the source's secret as its provider spec's `inbound:` says (a MAC of the raw body, or
//! a shared token), counted against `inbound.requests_per_minute`, and then queues a sync of
//! the source: incremental where its stream reads incrementally. The body is not used beyond
//! the signature: a notification says *that* something changed; the sync reads *what*.
//!
//! Off unless `inbound.listen` is set; on its own listener, so exposing it to an HRIS never
//! exposes the admin endpoint. Answers: 202 queued (or joined a queued sync), 200 for the
//! HRIS's unsigned connection test (`ping:` bodies; nothing is synced), 401 bad or
//! missing signature, 404 no such source accepting notifications, 413 over 1 MiB, 429 over
//! the rate (with `Retry-After`), 503 the secret cannot be read or roster is stopping.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::json;

use super::{Shared, SyncFlags};
use crate::config::provider::{Inbound, SignatureAlgorithm, SignatureEncoding};
use crate::config::secret::ProcessEnv;

/// Largest notification accepted.
const MAX_BODY: usize = 1 << 20;
/// Default verified notifications per source per minute.
pub const DEFAULT_PER_MINUTE: u32 = 12;
/// How old (or how far ahead) a timestamped notification may be.
const MAX_AGE: Duration = Duration::from_secs(5 * 60);

/// Why a notification was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The signature header is missing.
    NoSignature(String),
    /// The signature does not match (or is not written as the spec says).
    BadSignature,
    /// The timestamp header is missing, unreadable, or too far from now.
    Stale(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoSignature(h) => write!(f, "no `{h}` header"),
            Refusal::BadSignature => f.write_str("the signature does not match"),
            Refusal::Stale(why) => f.write_str(why),
        }
    }
}

/// Verifies a notification: `body` as received, `secret` the source's signing secret.
pub fn verify(
    spec: &Inbound,
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: jiff::Timestamp,
) -> Result<(), Refusal> {
    let value = headers
        .get(spec.header.as_str())
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Refusal::NoSignature(spec.header.clone()))?
        .trim();
    let value = match &spec.prefix {
        Some(p) => value
            .strip_prefix(p.as_str())
            .ok_or(Refusal::BadSignature)?,
        None => value,
    };
    let mut signed = body.to_vec();
    if let Some(th) = &spec.timestamp_header {
        let ts = headers
            .get(th.as_str())
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Refusal::Stale(format!("no `{th}` header")))?
            .trim();
        let at = ts
            .parse::<i64>()
            .ok()
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .or_else(|| ts.parse::<jiff::Timestamp>().ok())
            .ok_or_else(|| Refusal::Stale(format!("`{th}` is not a time")))?;
        let skew = now.duration_since(at).unsigned_abs();
        if skew > MAX_AGE {
            return Err(Refusal::Stale(format!(
                "`{th}` is {}s from now (at most {}s)",
                skew.as_secs(),
                MAX_AGE.as_secs()
            )));
        }
        signed.extend_from_slice(ts.as_bytes());
    }
    let ok = match spec.algorithm {
        SignatureAlgorithm::Token => constant_time_eq(value.as_bytes(), secret),
        SignatureAlgorithm::HmacSha256 => {
            mac_matches::<Hmac<sha2::Sha256>>(spec, secret, &signed, value)?
        }
        SignatureAlgorithm::HmacSha512 => {
            mac_matches::<Hmac<sha2::Sha512>>(spec, secret, &signed, value)?
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Refusal::BadSignature)
    }
}

/// True when `value` (written in the spec's encoding) is `M`'s MAC of `signed`; compared in
/// constant time.
fn mac_matches<M: Mac + hmac::digest::KeyInit>(
    spec: &Inbound,
    secret: &[u8],
    signed: &[u8],
    value: &str,
) -> Result<bool, Refusal> {
    let got = decode(spec.encoding, value).ok_or(Refusal::BadSignature)?;
    let mut mac = <M as Mac>::new_from_slice(secret).map_err(|_| Refusal::BadSignature)?;
    mac.update(signed);
    Ok(mac.verify_slice(&got).is_ok())
}

fn decode(encoding: SignatureEncoding, text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    match encoding {
        SignatureEncoding::Hex => {
            if text.len() % 2 != 0 {
                return None;
            }
            (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
                .collect()
        }
        SignatureEncoding::Base64 => STANDARD.decode(text).ok(),
        SignatureEncoding::Base64url => URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // The length is not secret (the token's length is the vendor's format).
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Accepted notifications per source in the last minute.
#[derive(Default)]
struct Limiter {
    seen: BTreeMap<String, VecDeque<Instant>>,
}

impl Limiter {
    /// Counts one for `source`, or says how long until one is allowed.
    fn admit(&mut self, source: &str, per_minute: u32, now: Instant) -> Result<(), Duration> {
        let window = Duration::from_secs(60);
        let q = self.seen.entry(source.to_string()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        if q.len() >= per_minute as usize {
            let oldest = *q.front().expect("full window is not empty");
            return Err(window.saturating_sub(now.duration_since(oldest)));
        }
        q.push_back(now);
        Ok(())
    }
}

/// The inbound endpoint's state.
#[derive(Clone)]
pub struct InboundState {
    /// The daemon's shared state: the current config, the sync queue.
    pub shared: Arc<Shared>,
    limiter: Arc<Mutex<Limiter>>,
}

impl InboundState {
    /// The state for `shared`.
    pub fn new(shared: Arc<Shared>) -> InboundState {
        InboundState {
            shared,
            limiter: Arc::new(Mutex::new(Limiter::default())),
        }
    }
}

/// The router: `POST /inbound/{source}`.
pub fn router(state: InboundState) -> axum::Router {
    axum::Router::new()
        .route("/inbound/{source}", post(notify))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn answer(status: StatusCode, source: &str, outcome: &'static str, message: String) -> Response {
    metrics::counter!("roster_inbound_notifications_total", "source" => source.to_string(), "outcome" => outcome).increment(1);
    (
        status,
        Json(json!({"outcome": outcome, "message": message})),
    )
        .into_response()
}

async fn notify(
    State(s): State<InboundState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let cfg = s.shared.config();
    let accepting = cfg
        .sources
        .iter()
        .find(|p| p.name == source && p.enabled)
        .and_then(|p| {
            let inbound = cfg.deployment.spec.sources.get(&p.name)?.inbound.as_ref()?;
            let spec = cfg.providers.get(&p.provider)?.spec.inbound.as_ref()?;
            Some((inbound, spec))
        });
    // One answer for an unknown source and one that does not accept notifications: a caller
    // learns nothing about the config.
    let Some((inbound, spec)) = accepting else {
        return answer(
            StatusCode::NOT_FOUND,
            "-",
            "unknown_source",
            format!("no source `{source}` accepts notifications here"),
        );
    };
    let env = ProcessEnv {
        config_dir: cfg.dir.clone(),
    };
    let secret = match inbound.secret.resolve(&env) {
        Ok(secret) => secret,
        Err(e) => {
            tracing::error!(source = %source, "cannot read the inbound secret: {e} ({})", e.help());
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                &source,
                "secret_unreadable",
                "the source's inbound secret cannot be read; see roster's log".into(),
            );
        }
    };
    if let Err(refusal) = verify(
        spec,
        secret.expose().as_bytes(),
        &headers,
        &body,
        jiff::Timestamp::now(),
    ) {
        // The connection test some HRIS post unsigned when a webhook is created: it
        // triggers nothing, so answering it cannot be abused.
        let text = String::from_utf8_lossy(&body);
        if spec.ping.iter().any(|p| p.trim() == text.trim()) {
            tracing::info!(source = %source, "answered the HRIS's connection test");
            return answer(
                StatusCode::OK,
                &source,
                "ping",
                "connection test received; nothing was synced".into(),
            );
        }
        tracing::warn!(source = %source, "refused a notification: {refusal}");
        return answer(
            StatusCode::UNAUTHORIZED,
            &source,
            "refused",
            format!("not verified: {refusal}"),
        );
    }
    let per_minute = cfg
        .deployment
        .spec
        .inbound
        .requests_per_minute
        .unwrap_or(DEFAULT_PER_MINUTE);
    let admitted = s.limiter.lock().unwrap_or_else(|e| e.into_inner()).admit(
        &source,
        per_minute,
        Instant::now(),
    );
    if let Err(wait) = admitted {
        let secs = wait.as_secs().max(1);
        let mut r = answer(
            StatusCode::TOO_MANY_REQUESTS,
            &source,
            "rate_limited",
            format!(
                "more than {per_minute} notifications a minute for `{source}`; the next is accepted in {secs}s"
            ),
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            secs.to_string().parse().expect("digits are a header value"),
        );
        return r;
    }
    let queued = s.shared.sources().get(&source).is_some_and(|st| st.queued);
    if queued {
        return answer(
            StatusCode::ACCEPTED,
            &source,
            "joined",
            format!("a sync of `{source}` is already queued; it will see this change"),
        );
    }
    // Nobody waits for the result: the HRIS wants its answer at once.
    match s.shared.request_sync(&source, SyncFlags::default()) {
        Some(_) => {
            tracing::info!(source = %source, "notification verified: sync queued");
            answer(
                StatusCode::ACCEPTED,
                &source,
                "queued",
                format!("a sync of `{source}` is queued"),
            )
        }
        None => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &source,
            "stopping",
            "roster is stopping".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Inbound {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    const BODY: &[u8] = br#"{"hook":{"event":"Employee.changed"},"linked_account":{"id":"la-1"},"data":{"id":"e-1"}}"#;
    const NOW: &str = "2026-12-03T12:00:00Z";

    // The expected signatures were computed independently, with Python's hmac, hashlib and
    // base64 modules, from the secret and BODY above (and "1796299200" for BambooHR).
    #[test]
    fn merge_signs_the_body_with_hmac_sha256_in_unpadded_base64url() {
        let s = spec("{header: X-Merge-Webhook-Signature, encoding: base64url}");
        let now: jiff::Timestamp = NOW.parse().unwrap();
        let good = headers(&[(
            "x-merge-webhook-signature",
            "KiklljEzybZIPB7qjhYNzhmwcG01L3nxs9sX5D3n6RE",
        )]);
        assert_eq!(verify(&s, b"merge-signing-key", &good, BODY, now), Ok(()));
        assert_eq!(
            verify(&s, b"another-key", &good, BODY, now),
            Err(Refusal::BadSignature)
        );
        let mut tampered = BODY.to_vec();
        tampered[10] ^= 1;
        assert_eq!(
            verify(&s, b"merge-signing-key", &good, &tampered, now),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify(&s, b"merge-signing-key", &HeaderMap::new(), BODY, now),
            Err(Refusal::NoSignature("X-Merge-Webhook-Signature".into()))
        );
    }

    #[test]
    fn hibob_signs_with_hmac_sha512_in_base64() {
        let s = spec("{header: Bob-Signature, algorithm: hmac_sha512, encoding: base64}");
        let now: jiff::Timestamp = NOW.parse().unwrap();
        let good = headers(&[(
            "bob-signature",
            "nxGTiPpM0qBkIwhhx1sNW3KR5E99Wgpo6szkbQavJYbRLZrRF54Ur71WoRYCsPv+d35Tj8QGLiFDtukaP8v/0A==",
        )]);
        assert_eq!(verify(&s, b"bob-secret", &good, BODY, now), Ok(()));
        assert_eq!(
            verify(&s, b"bob-secret", &good, b"{}", now),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn bamboohr_signs_body_then_timestamp_in_hex_and_old_ones_are_replays() {
        let s = spec("{header: X-BambooHR-Signature, timestamp_header: X-BambooHR-Timestamp}");
        let sent: jiff::Timestamp = "2026-12-03T12:00:00Z".parse().unwrap();
        assert_eq!(sent.as_second(), 1796299200);
        let good = headers(&[
            (
                "x-bamboohr-signature",
                "afe300955a2219e1084c537817905db618e46a24082a735b6cdf3969eaacfb2c",
            ),
            ("x-bamboohr-timestamp", "1796299200"),
        ]);
        let secret = b"bamboo-private-key";
        let within = sent + jiff::SignedDuration::from_secs(120);
        assert_eq!(verify(&s, secret, &good, BODY, within), Ok(()));
        let late = sent + jiff::SignedDuration::from_secs(301);
        assert!(matches!(
            verify(&s, secret, &good, BODY, late),
            Err(Refusal::Stale(_))
        ));
        let mut moved = good.clone();
        moved.insert("x-bamboohr-timestamp", "1796299201".parse().unwrap());
        assert_eq!(
            verify(&s, secret, &moved, BODY, within),
            Err(Refusal::BadSignature),
            "the timestamp is signed: changing it breaks the signature"
        );
    }

    #[test]
    fn a_token_is_compared_whole_and_a_prefix_is_required() {
        let now: jiff::Timestamp = NOW.parse().unwrap();
        let s = spec("{header: X-Webhook-Token, algorithm: token}");
        let h = headers(&[("x-webhook-token", "tok-123")]);
        assert_eq!(verify(&s, b"tok-123", &h, BODY, now), Ok(()));
        assert_eq!(
            verify(&s, b"tok-1234", &h, BODY, now),
            Err(Refusal::BadSignature)
        );
        let p = spec("{header: X-Hub-Signature-256, prefix: 'sha256='}");
        let bare = headers(&[(
            "x-hub-signature-256",
            "afe300955a2219e1084c537817905db618e46a24082a735b6cdf3969eaacfb2c",
        )]);
        assert_eq!(
            verify(&p, b"k", &bare, BODY, now),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn the_limiter_admits_n_a_minute_per_source_and_says_when_the_next_is_allowed() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        assert!(l.admit("a", 2, t0).is_ok());
        assert!(l.admit("a", 2, t0 + Duration::from_secs(10)).is_ok());
        assert_eq!(
            l.admit("a", 2, t0 + Duration::from_secs(20)),
            Err(Duration::from_secs(40))
        );
        assert!(l.admit("b", 2, t0 + Duration::from_secs(20)).is_ok());
        assert!(l.admit("a", 2, t0 + Duration::from_secs(60)).is_ok());
    }
}
