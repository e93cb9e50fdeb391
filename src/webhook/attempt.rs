//! One webhook delivery attempt, and when to make the next one.
//!
//! [`client`] builds the HTTP client every delivery to an endpoint shares: no redirects, a
//! total timeout, no proxy, and a DNS resolver that drops special-purpose addresses
//! (`config::compile::special_address`, the same classification `validate` uses; SSRF
//! protection: a public name can resolve to an internal address at any time, so the config
//! check alone is not enough). [`attempt`] POSTs one signed message and sorts the answer into
//! an [`Outcome`], following the Standard Webhooks guidance: only 2xx is success, 3xx is a
//! failure (redirects are not followed), 410 disables the endpoint, 429 and 503 may say when
//! to come back. [`next_delay`] is the retry schedule, pure.
//!
//! Not here: signing (`sign`), the outbox, sleeping, and dead-lettering. Error texts never
//! contain request headers (the signature), the URL's path or query (receivers often put a
//! token there), or anything the receiver answered: a receiver that echoes the request in
//! its error page would put the event's personal data into Roster's logs and the published
//! `deliveries.last_error`. An error is the HTTP status and Roster's own reading of it.

use std::error::Error as _;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER};

/// The retry schedule when a webhook sets none: entry `i` is the wait before attempt `i + 1`
/// (the first is immediate), so 8 attempts over about 28 hours, then the dead letter.
///
/// The Standard Webhooks example schedule, shortened after 10 hours.
pub const DEFAULT_SCHEDULE: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The most a receiver's `Retry-After` can postpone the next attempt.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How far [`next_delay`] moves a scheduled delay either way (±10%), so endpoints that failed
/// together do not all come back at the same second.
pub const JITTER: f64 = 0.1;

pub use crate::config::compile::{Reach, Special, special_address};

/// The webhook HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// reqwest refused the settings (TLS backend, user agent).
    #[error(
        "could not set up the HTTP client for webhook deliveries: {0}; check that the version \
         string is a valid header value, otherwise this is a bug in roster or a broken TLS setup \
         on this host"
    )]
    Build(#[source] reqwest::Error),
}

/// The client for one webhook endpoint's deliveries.
///
/// - redirects are never followed (Standard Webhooks: a 3xx is a failure; the user fixes the
///   URL);
/// - `timeout` bounds the whole attempt, from connecting to the end of the answer;
/// - the user agent is `roster/<version>`;
/// - no proxy, not even from `HTTP(S)_PROXY`: a proxy would resolve names itself, past the
///   address check;
/// - names are resolved with tokio, and special-purpose addresses ([`special_address`]) are
///   dropped: internal ones unless `allow_private_network`, cloud metadata and addresses no
///   receiver can have always; when nothing is left the attempt is [`Outcome::Refused`].
///   URLs with an IP literal never reach the resolver: [`attempt`] checks those, so pass it
///   the same `allow_private_network`.
pub fn client(
    timeout: Duration,
    allow_private_network: bool,
    version: &str,
) -> Result<reqwest::Client, ClientError> {
    client_with(timeout, allow_private_network, version, Lookup::System)
}

fn client_with(
    timeout: Duration,
    allow_private_network: bool,
    version: &str,
    lookup: Lookup,
) -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(format!("roster/{version}"))
        .no_proxy()
        .dns_resolver(GuardedResolver {
            allow_private_network,
            lookup,
        })
        .build()
        .map_err(ClientError::Build)
}

/// Where names are looked up: the system's resolver, or (in tests) a fixed table, so a test
/// can make a name resolve to any address without a DNS server.
#[derive(Debug, Clone)]
enum Lookup {
    System,
    #[cfg(test)]
    Fixed(std::sync::Arc<std::collections::HashMap<String, Vec<IpAddr>>>),
}

impl Lookup {
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<SocketAddr>> {
        match self {
            Lookup::System => Ok(tokio::net::lookup_host((host, 0)).await?.collect()),
            #[cfg(test)]
            Lookup::Fixed(table) => Ok(table
                .get(host)
                .into_iter()
                .flatten()
                .map(|ip| SocketAddr::new(*ip, 0))
                .collect()),
        }
    }
}

/// Resolves names and drops the addresses a webhook may not connect to.
#[derive(Debug, Clone)]
struct GuardedResolver {
    allow_private_network: bool,
    lookup: Lookup,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private_network;
        let host = name.as_str().to_owned();
        let lookup = self.lookup.clone();
        Box::pin(async move {
            let looked_up = lookup.resolve(&host).await;
            let found: Vec<SocketAddr> = match looked_up {
                Ok(addrs) => addrs,
                Err(source) => {
                    let host = host.clone();
                    return Err(ResolveError::Lookup { host, source }.into());
                }
            };
            let kept = screen(&host, found, allow)?;
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// Why the resolver gave no address. Found again in reqwest's error chain by [`attempt`].
#[derive(Debug, thiserror::Error)]
enum ResolveError {
    /// DNS failed (the name does not exist, or no server answered).
    #[error("could not resolve `{host}`: {source}")]
    Lookup {
        host: String,
        #[source]
        source: std::io::Error,
    },
    /// The name has no address.
    #[error("`{host}` has no address")]
    NoAddress { host: String },
    /// Every address is one a webhook may not connect to.
    #[error("`{host}` resolves only to {special} ({addr}); {}", special.help())]
    Private {
        host: String,
        special: Special,
        addr: IpAddr,
    },
}

/// The addresses a connection to a name may use, and an error when none is left. A name is
/// never the address itself, so cloud metadata addresses are dropped even when
/// `allow_private_network` is set.
fn screen(
    host: &str,
    found: Vec<SocketAddr>,
    allow: bool,
) -> Result<Vec<SocketAddr>, ResolveError> {
    if found.is_empty() {
        return Err(ResolveError::NoAddress {
            host: host.to_owned(),
        });
    }
    let mut refused = None;
    let kept: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| match special_address(a.ip()) {
            Some(s) if s.refused(allow, false) => {
                refused.get_or_insert((s, a.ip()));
                false
            }
            _ => true,
        })
        .collect();
    match refused {
        Some((special, addr)) if kept.is_empty() => Err(ResolveError::Private {
            host: host.to_owned(),
            special,
            addr,
        }),
        _ => Ok(kept),
    }
}

/// One message to send to one endpoint, signed for this attempt.
///
/// `Debug` shows the id, timestamp and body size only: the body carries personal data and the
/// URL may carry a token.
#[derive(Clone, Copy)]
pub struct Delivery<'a> {
    /// The receiver's URL.
    pub url: &'a url::Url,
    /// `webhook-id`: the message id, the same on every attempt (the receiver's idempotency key).
    pub msg_id: &'a str,
    /// `webhook-timestamp`: this attempt's Unix time in seconds (new on every attempt).
    pub timestamp: i64,
    /// `webhook-signature`: `sign::signature_header` of this id, timestamp and body.
    pub signature: &'a str,
    /// The JSON body, byte for byte as signed.
    pub body: &'a [u8],
}

impl fmt::Debug for Delivery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("endpoint", &endpoint(self.url))
            .field("msg_id", &self.msg_id)
            .field("timestamp", &self.timestamp)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx: done.
    Delivered {
        /// The status it answered.
        status: u16,
    },
    /// It failed in a way that may pass later: try again on the schedule ([`next_delay`]).
    Retry {
        /// The status, when the receiver answered at all.
        status: Option<u16>,
        /// How long the receiver asked us to wait (`Retry-After` on 429 and 503), uncapped.
        retry_after: Option<Duration>,
        /// What happened and what to do, for logs and the delivery record.
        error: String,
    },
    /// The receiver answered 410 Gone: it wants no more messages; disable the endpoint.
    Gone {
        /// The status (410).
        status: u16,
    },
    /// Nothing was sent and retrying will not help until the config changes: an internal
    /// address without `allow_private_network`, or a URL that cannot be used.
    Refused {
        /// What was refused and what to do.
        error: String,
    },
}

/// POSTs one message: `content-type: application/json`, `webhook-id`, `webhook-timestamp`
/// and `webhook-signature`, the body as is.
///
/// `client` comes from [`client`]; `allow_private_network` must be the value it was built
/// with (this function checks URLs with an IP literal, which bypass the resolver). Never
/// panics and never returns early with an error: every ending is an [`Outcome`].
pub async fn attempt(
    client: &reqwest::Client,
    allow_private_network: bool,
    d: &Delivery<'_>,
) -> Outcome {
    if let Err(error) = check_url(d.url, allow_private_network) {
        return Outcome::Refused { error };
    }
    let headers = [
        ("webhook-id", HeaderValue::from_str(d.msg_id)),
        (
            "webhook-timestamp",
            HeaderValue::from_str(&d.timestamp.to_string()),
        ),
        ("webhook-signature", HeaderValue::from_str(d.signature)),
    ];
    let mut request = client
        .post(d.url.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .body(d.body.to_vec());
    for (name, value) in headers {
        match value {
            Ok(v) => request = request.header(name, v),
            Err(_) => {
                return Outcome::Refused {
                    error: format!(
                        "the `{name}` header would not be a valid HTTP header value (a control \
                         character?); this is a bug in roster, please report it"
                    ),
                };
            }
        }
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return from_error(&e, d.url),
    };
    let status = response.status();
    let code = status.as_u16();
    if status.is_success() {
        return Outcome::Delivered { status: code };
    }
    if code == 410 {
        return Outcome::Gone { status: code };
    }
    if status.is_redirection() {
        // Only the target's host: its path and query are the receiver's words (and could
        // carry what it was sent).
        let target = match response.headers().get(LOCATION) {
            Some(l) => match l.to_str().ok().and_then(|l| d.url.join(l).ok()) {
                Some(to) if to.host_str() == d.url.host_str() => {
                    "to another path on the same host".to_owned()
                }
                Some(to) => format!("to `{}`", endpoint(&to)),
                None => "to an unreadable Location".to_owned(),
            },
            None => "without a Location".to_owned(),
        };
        return Outcome::Retry {
            status: Some(code),
            retry_after: None,
            error: format!(
                "the receiver redirected (HTTP {code}) {target}; webhooks do not follow \
                 redirects: set the webhook's `url` to the final address"
            ),
        };
    }
    let retry_after = match code {
        429 | 503 => response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now())),
        _ => None,
    };
    // The answer is not read: see the module docs.
    drop(response);
    Outcome::Retry {
        status: Some(code),
        retry_after,
        error: answered(status),
    }
}

/// The error of a failed answer: the status and what it usually means, never the body.
fn answered(status: reqwest::StatusCode) -> String {
    let code = status.as_u16();
    let meaning = match code {
        400 | 422 => {
            "the receiver rejected the message as invalid; check that it accepts Roster's \
             payload (version 1) in the webhook's `payload` form"
        }
        401 | 403 => {
            "the receiver refused the signature or credentials; check that it has this \
             webhook's current secret"
        }
        404 | 405 => "nothing at this URL takes a POST; check the webhook's `url`",
        408 | 429 => "the receiver is busy; Roster tries again later",
        413 => "the receiver refused the body as too large; raise its limit",
        500..=599 => "the receiver failed on its side",
        _ => "the receiver refused the message",
    };
    let reason = status.canonical_reason().unwrap_or("");
    format!(
        "the receiver answered HTTP {code}{}{reason}: {meaning} (its answer is not recorded, \
         as it can echo personal data; the receiver's own logs say more)",
        if reason.is_empty() { "" } else { " " }
    )
}

/// Refuses URLs that cannot be sent to, and IP literals that are internal (the resolver,
/// which checks names, never sees them).
fn check_url(url: &url::Url, allow_private_network: bool) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the webhook URL's scheme is `{}`; use an https:// (or http://) URL",
            url.scheme()
        ));
    }
    let ip = match url.host() {
        None => return Err("the webhook URL has no host; use an https:// URL with one".into()),
        Some(url::Host::Domain(_)) => return Ok(()),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
    };
    // The URL names the address: a metadata address written out passes when allowed.
    match special_address(ip) {
        Some(s) if s.refused(allow_private_network, true) => {
            Err(format!("`{ip}` is {s}; {}", s.help()))
        }
        _ => Ok(()),
    }
}

/// `host[:port]` of a URL: what errors name, never its path or query.
fn endpoint(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// The outcome of a request that got no answer.
fn from_error(e: &reqwest::Error, url: &url::Url) -> Outcome {
    let at = endpoint(url);
    let mut cause: Option<&(dyn std::error::Error + 'static)> = e.source();
    let mut innermost = None;
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<ResolveError>() {
            return match r {
                ResolveError::Private { .. } => Outcome::Refused {
                    error: r.to_string(),
                },
                _ => retry(format!(
                    "{r}; check the webhook's host name and this host's DNS"
                )),
            };
        }
        innermost = Some(c);
        cause = c.source();
    }
    let detail = innermost.map(|c| c.to_string()).unwrap_or_default();
    let error = if e.is_timeout() {
        format!(
            "no answer from `{at}` within the webhook's `timeout`; the receiver is slow or \
             unreachable (a receiver should answer quickly and process later)"
        )
    } else if e.is_connect() {
        format!("could not connect to `{at}`: {detail}")
    } else if e.is_builder() {
        return Outcome::Refused {
            error: format!("the request to `{at}` could not be built: {detail}"),
        };
    } else {
        format!("the request to `{at}` failed: {detail}")
    };
    retry(error)
}

fn retry(error: String) -> Outcome {
    Outcome::Retry {
        status: None,
        retry_after: None,
        error,
    }
}

/// A `Retry-After` value as a wait from `now`: delay-seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`; a date in the past is no wait). Anything else is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// How long to wait before the next attempt, or `None` when the schedule is exhausted and
/// the message goes to the dead letter.
///
/// `attempts_made` is the number of attempts of this message to this endpoint already made,
/// all failed (`Outcome::Retry`): 0 before the first. The result is the wait before attempt
/// number `attempts_made + 1`, counted from the end of the last attempt (for the first, from
/// when the event was queued): `schedule[attempts_made]`, moved by up to ±[`JITTER`]
/// (`jitter` is a uniform random number in 0..1: 0 gives -10%, 0.5 the exact delay, 1 +10%;
/// out-of-range values are clamped, NaN counts as 0.5), and never less than `retry_after`,
/// itself capped at [`MAX_RETRY_AFTER`]. A schedule of `n` delays allows `n` attempts.
///
/// With [`DEFAULT_SCHEDULE`]: `attempts_made` 0 → 0s (the first attempt is immediate),
/// 1 → ~5s, 2 → ~5m, …, 7 → ~10h, 8 → `None`.
pub fn next_delay(
    schedule: &[Duration],
    attempts_made: usize,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    let base = *schedule.get(attempts_made)?;
    let jitter = if jitter.is_nan() {
        0.5
    } else {
        jitter.clamp(0.0, 1.0)
    };
    let factor = 1.0 + JITTER * (2.0 * jitter - 1.0);
    let delay = Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(base);
    let floor = retry_after.map_or(Duration::ZERO, |r| r.min(MAX_RETRY_AFTER));
    Some(delay.max(floor))
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Delivered { status } => write!(f, "delivered (HTTP {status})"),
            Outcome::Retry { error, .. } => write!(f, "failed, will retry: {error}"),
            Outcome::Gone { status } => write!(
                f,
                "the receiver answered HTTP {status} Gone: it wants no more messages; the \
                 webhook is disabled until its config changes"
            ),
            Outcome::Refused { error } => write!(f, "not sent: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::post;

    use super::super::sign::{Secret, signature_header, verify};
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const BODY: &[u8] = br#"{"type":"person.created","data":{"name":"Zo\u00eb"}}"#;

    /// What the receiver saw: every request's headers and body, and hits on the redirect target.
    #[derive(Clone, Default)]
    struct Seen {
        requests: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
        redirect_target_hits: Arc<AtomicUsize>,
    }

    async fn status(
        State(seen): State<Seen>,
        Path(code): Path<u16>,
        headers: HeaderMap,
        body: Bytes,
    ) -> impl IntoResponse {
        seen.requests.lock().unwrap().push((headers, body.clone()));
        let code = StatusCode::from_u16(code).unwrap();
        match code.as_u16() {
            429 => (code, [("retry-after", "7")], "slow down").into_response(),
            503 => (code, [("retry-after", "Fri, 01 Jan 2100 00:00:00 GMT")], "").into_response(),
            302 => (code, [("location", "/target")], "").into_response(),
            // Echoes what it was sent, as some frameworks' error pages do.
            500 | 400 => (code, format!("boom {}", String::from_utf8_lossy(&body))).into_response(),
            _ => code.into_response(),
        }
    }

    async fn target(State(seen): State<Seen>) -> StatusCode {
        seen.redirect_target_hits.fetch_add(1, Ordering::SeqCst);
        StatusCode::OK
    }

    async fn slow() -> StatusCode {
        tokio::time::sleep(Duration::from_secs(5)).await;
        StatusCode::OK
    }

    /// A receiver on 127.0.0.1:0; its port and what it saw.
    async fn receiver() -> (u16, Seen) {
        let seen = Seen::default();
        let app = Router::new()
            .route("/status/{code}", post(status))
            .route("/target", post(target).get(target))
            .route("/slow", post(slow))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (port, seen)
    }

    async fn send(url: &str, allow_private: bool, timeout: Duration) -> Outcome {
        let url = url::Url::parse(url).unwrap();
        let ts = 1_700_000_000;
        let secret = Secret::parse(SECRET).unwrap();
        let signature = signature_header(&[secret], "msg_1", ts, BODY);
        let client = client(timeout, allow_private, "0.0.0-test").unwrap();
        let d = Delivery {
            url: &url,
            msg_id: "msg_1",
            timestamp: ts,
            signature: &signature,
            body: BODY,
        };
        attempt(&client, allow_private, &d).await
    }

    async fn send_status(code: u16) -> (Outcome, Seen) {
        let (port, seen) = receiver().await;
        let url = format!("http://127.0.0.1:{port}/status/{code}");
        (send(&url, true, Duration::from_secs(5)).await, seen)
    }

    fn retry_error(o: &Outcome) -> &str {
        match o {
            Outcome::Retry { error, .. } => error,
            other => panic!("expected Retry, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn success_sends_the_standard_headers_and_a_valid_signature() {
        for code in [200, 204] {
            let (outcome, seen) = send_status(code).await;
            assert_eq!(outcome, Outcome::Delivered { status: code });
            let requests = seen.requests.lock().unwrap();
            assert_eq!(requests.len(), 1);
            let (h, body) = &requests[0];
            let get = |k: &str| h.get(k).unwrap().to_str().unwrap().to_owned();
            assert_eq!(get("content-type"), "application/json");
            assert_eq!(get("webhook-id"), "msg_1");
            assert_eq!(get("webhook-timestamp"), "1700000000");
            assert_eq!(get("user-agent"), "roster/0.0.0-test");
            assert_eq!(body.as_ref(), BODY);
            let ts: i64 = get("webhook-timestamp").parse().unwrap();
            let secret = Secret::parse(SECRET).unwrap();
            assert!(verify(
                &secret,
                &get("webhook-id"),
                ts,
                body,
                &get("webhook-signature")
            ));
        }
    }

    #[tokio::test]
    async fn failures_retry_and_410_is_gone() {
        let (outcome, _) = send_status(500).await;
        let Outcome::Retry {
            status: Some(500),
            retry_after: None,
            error,
        } = &outcome
        else {
            panic!("{outcome:?}")
        };
        assert!(
            error.starts_with(
                "the receiver answered HTTP 500 Internal Server Error: the receiver failed on its side"
            ),
            "{error}"
        );
        // The answer echoed the body: none of it is quoted, nor are request headers.
        assert!(!error.contains("boom") && !error.contains("Zo"), "{error}");
        assert!(!error.contains("v1,"));
        let (outcome, _) = send_status(400).await;
        let error = retry_error(&outcome);
        assert!(
            error.starts_with("the receiver answered HTTP 400 Bad Request: the receiver rejected"),
            "{error}"
        );
        assert!(!error.contains("boom") && !error.contains("Zo"), "{error}");

        for code in [400, 401, 404, 408, 502, 504] {
            let (outcome, _) = send_status(code).await;
            assert!(
                matches!(outcome, Outcome::Retry { status: Some(c), retry_after: None, .. } if c == code),
                "{code}: {outcome:?}"
            );
        }
        assert_eq!(send_status(410).await.0, Outcome::Gone { status: 410 });
    }

    #[tokio::test]
    async fn retry_after_is_honoured() {
        let (outcome, _) = send_status(429).await;
        let Outcome::Retry {
            status: Some(429),
            retry_after,
            error,
        } = &outcome
        else {
            panic!("{outcome:?}")
        };
        assert_eq!(*retry_after, Some(Duration::from_secs(7)));
        assert!(
            error.starts_with(
                "the receiver answered HTTP 429 Too Many Requests: the receiver is busy"
            ),
            "{error}"
        );
        assert!(!error.contains("slow down"), "{error}");

        // An HTTP date far ahead: a long wait, which next_delay caps.
        let (outcome, _) = send_status(503).await;
        let Outcome::Retry {
            retry_after: Some(wait),
            ..
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert!(wait > Duration::from_secs(365 * 24 * 3600));
        let d = next_delay(&DEFAULT_SCHEDULE, 1, Some(wait), 0.5);
        assert_eq!(d, Some(MAX_RETRY_AFTER));
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let (outcome, seen) = send_status(302).await;
        let error = retry_error(&outcome);
        assert!(matches!(
            outcome,
            Outcome::Retry {
                status: Some(302),
                ..
            }
        ));
        assert!(
            error.contains("redirected (HTTP 302) to another path on the same host"),
            "{error}"
        );
        assert!(
            error.contains("set the webhook's `url` to the final address"),
            "{error}"
        );
        assert_eq!(seen.redirect_target_hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_slow_receiver_times_out() {
        let (port, _) = receiver().await;
        let url = format!("http://127.0.0.1:{port}/slow");
        let started = std::time::Instant::now();
        let outcome = send(&url, true, Duration::from_millis(300)).await;
        assert!(started.elapsed() < Duration::from_secs(3));
        let error = retry_error(&outcome);
        assert!(matches!(outcome, Outcome::Retry { status: None, .. }));
        assert!(
            error.starts_with(&format!("no answer from `127.0.0.1:{port}` within")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn connection_refused_is_retried() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let outcome = send(
            &format!("http://127.0.0.1:{port}/x?token=canary"),
            true,
            Duration::from_secs(5),
        )
        .await;
        let error = retry_error(&outcome);
        assert!(
            error.starts_with(&format!("could not connect to `127.0.0.1:{port}`: ")),
            "{error}"
        );
        assert!(!error.contains("canary"), "{error}");
    }

    #[tokio::test]
    async fn unknown_host_is_retried() {
        let outcome = send(
            "https://roster-test.invalid/hook?token=canary",
            false,
            Duration::from_secs(3),
        )
        .await;
        let error = retry_error(&outcome);
        assert!(matches!(outcome, Outcome::Retry { status: None, .. }));
        assert!(!error.contains("canary"), "{error}");
        // `.invalid` never exists (RFC 6761); a host without any DNS server times out instead.
        assert!(
            error.starts_with("could not resolve `roster-test.invalid`: ")
                || error.starts_with("no answer from `roster-test.invalid` within"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn private_addresses_are_refused_unless_allowed() {
        let (port, seen) = receiver().await;
        // An IP literal (checked by attempt) and a name (checked by the resolver).
        for (url, what) in [
            (
                format!("http://127.0.0.1:{port}/status/200"),
                "`127.0.0.1` is a loopback address",
            ),
            (
                format!("http://[::1]:{port}/status/200"),
                "`::1` is a loopback address",
            ),
            (
                format!("http://localhost:{port}/status/200"),
                "`localhost` resolves only to a loopback address",
            ),
        ] {
            let outcome = send(&url, false, Duration::from_secs(5)).await;
            let Outcome::Refused { error } = &outcome else {
                panic!("{url}: {outcome:?}")
            };
            assert!(error.starts_with(what), "{error}");
            assert!(error.contains("`allow_private_network: true`"), "{error}");
        }
        assert!(seen.requests.lock().unwrap().is_empty());

        // Allowed: both paths deliver.
        for host in ["127.0.0.1", "localhost"] {
            let url = format!("http://{host}:{port}/status/200");
            assert_eq!(
                send(&url, true, Duration::from_secs(5)).await,
                Outcome::Delivered { status: 200 }
            );
        }
        assert_eq!(seen.requests.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn unusable_urls_are_refused() {
        let outcome = send("ftp://example.com/hook", true, Duration::from_secs(5)).await;
        assert!(
            matches!(outcome, Outcome::Refused { ref error } if error.contains("scheme is `ftp`"))
        );
    }

    /// Every special-purpose range, at connect time: as an IP literal in the URL (checked by
    /// `attempt`) and as what a name resolves to (checked by the resolver), with and without
    /// `allow_private_network`. The same table as `validate`'s test.
    #[test]
    fn special_addresses_at_connect_time() {
        for &(addr, what, public_ok, allowed_ok) in crate::config::compile::SPECIAL_CASES {
            let ip: IpAddr = addr.parse().unwrap();
            let metadata = special_address(ip).is_some_and(|s| s.reach == Reach::Metadata);
            let host = match ip {
                IpAddr::V4(_) => addr.to_owned(),
                IpAddr::V6(_) => format!("[{addr}]"),
            };
            let url = url::Url::parse(&format!("https://{host}/hook")).unwrap();
            for (allow, ok) in [(false, public_ok), (true, allowed_ok)] {
                let literal = check_url(&url, allow);
                assert_eq!(
                    literal.is_ok(),
                    ok,
                    "{addr} literal, allow {allow}: {literal:?}"
                );
                if let (Err(e), Some(what)) = (&literal, what) {
                    assert!(e.contains(what), "{e}");
                }
                // By name, metadata is refused even when allowed.
                let by_name = screen("hook.test", vec![SocketAddr::new(ip, 443)], allow);
                let want = ok && !metadata;
                assert_eq!(by_name.is_ok(), want, "{addr} by name, allow {allow}");
                if let Err(e) = by_name {
                    let e = e.to_string();
                    assert!(e.starts_with("`hook.test` resolves only to "), "{e}");
                    assert!(e.ends_with(special_address(ip).unwrap().help()), "{e}");
                }
            }
        }
    }

    /// A name that resolves to special addresses is refused before any connection, through
    /// the real client and resolver; with `allow_private_network` the loopback receiver is
    /// reached and the metadata address among the answers is not.
    #[tokio::test]
    async fn names_resolving_to_special_addresses_are_refused() {
        let (port, seen) = receiver().await;
        let names: std::collections::HashMap<String, Vec<IpAddr>> = [
            ("metadata.test", vec!["169.254.169.254"]),
            ("nat64.test", vec!["64:ff9b::7f00:1"]),
            ("sixtofour.test", vec!["2002:7f00:1::1"]),
            ("teredo.test", vec!["2001:0:4136:e378:8000:63bf:80ff:fffe"]),
            ("mapped.test", vec!["::ffff:10.0.0.1"]),
            ("bench.test", vec!["198.18.0.1"]),
            ("doc.test", vec!["192.0.2.1"]),
            ("multicast.test", vec!["224.0.0.1"]),
            ("localhost.", vec!["127.0.0.1"]),
            ("both.test", vec!["169.254.169.254", "127.0.0.1"]),
        ]
        .into_iter()
        .map(|(n, ips)| {
            (
                n.to_owned(),
                ips.iter().map(|i| i.parse().unwrap()).collect(),
            )
        })
        .collect();
        let lookup = Lookup::Fixed(Arc::new(names.clone()));
        let secret = Secret::parse(SECRET).unwrap();
        let signature = signature_header(&[secret], "msg_1", 1, BODY);
        let go = |allow: bool, name: &str| {
            let url = url::Url::parse(&format!("http://{name}:{port}/status/200")).unwrap();
            let client =
                client_with(Duration::from_secs(5), allow, "0.0.0-test", lookup.clone()).unwrap();
            let signature = signature.clone();
            async move {
                let d = Delivery {
                    url: &url,
                    msg_id: "msg_1",
                    timestamp: 1,
                    signature: &signature,
                    body: BODY,
                };
                attempt(&client, allow, &d).await
            }
        };
        for name in names.keys() {
            let outcome = go(false, name).await;
            assert!(
                matches!(&outcome, Outcome::Refused { error } if error.contains("resolves only to")),
                "{name}: {outcome:?}"
            );
        }
        for name in ["metadata.test", "doc.test", "multicast.test"] {
            let outcome = go(true, name).await;
            assert!(
                matches!(outcome, Outcome::Refused { .. }),
                "{name}: {outcome:?}"
            );
        }
        assert!(seen.requests.lock().unwrap().is_empty());
        assert_eq!(
            go(true, "both.test").await,
            Outcome::Delivered { status: 200 }
        );
        assert_eq!(seen.requests.lock().unwrap().len(), 1);
    }

    #[test]
    fn resolver_screening() {
        let a = |s: &str| SocketAddr::new(s.parse().unwrap(), 0);
        let public = a("93.184.216.34");
        let mixed = vec![a("10.0.0.5"), public, a("fe80::1")];
        assert_eq!(screen("h", mixed.clone(), false).unwrap(), vec![public]);
        assert_eq!(screen("h", mixed.clone(), true).unwrap(), mixed);
        let err = screen("h", vec![a("169.254.169.254"), a("10.0.0.1")], false).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`h` resolves only to a cloud metadata address (169.254.169.254); "),
            "{err}"
        );
        // Allowed private networks still never reach a metadata service through a name.
        let with_metadata = vec![a("169.254.169.254"), a("10.0.0.1")];
        assert_eq!(
            screen("h", with_metadata, true).unwrap(),
            vec![a("10.0.0.1")]
        );
        let err = screen("h", vec![a("fd00:ec2::254")], true).unwrap_err();
        assert!(err.to_string().contains("cloud metadata"), "{err}");
        assert!(matches!(
            screen("h", vec![], true),
            Err(ResolveError::NoAddress { .. })
        ));
    }

    #[test]
    fn retry_after_values() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let check = |v: &str| parse_retry_after(v, now);
        assert_eq!(check("7"), Some(Duration::from_secs(7)));
        assert_eq!(check(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            check("Sun, 06 Nov 1994 08:50:37 GMT"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(check("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(check("-5"), None);
        assert_eq!(check("1.5"), None);
        assert_eq!(check("soon"), None);
    }

    #[test]
    fn schedule() {
        let s = |secs: u64| Some(Duration::from_secs(secs));
        let check = |attempts, retry_after, jitter, want: Option<Duration>| {
            assert_eq!(
                next_delay(&DEFAULT_SCHEDULE, attempts, retry_after, jitter),
                want,
                "attempts {attempts}, retry_after {retry_after:?}, jitter {jitter}"
            );
        };
        // Without jitter (0.5), the schedule itself; the first attempt is immediate.
        let exact = [0, 5, 300, 1800, 7200, 18000, 36000, 36000];
        for (n, secs) in exact.into_iter().enumerate() {
            check(n, None, 0.5, s(secs));
        }
        // Exhausted: dead letter, whatever the receiver asked.
        check(8, None, 0.5, None);
        check(8, s(7), 0.5, None);
        check(100, None, 0.5, None);
        assert_eq!(next_delay(&[], 0, None, 0.5), None);
        // ±10% jitter at the ends; the immediate first attempt stays immediate.
        check(2, None, 0.0, s(270));
        check(2, None, 1.0, s(330));
        check(0, None, 1.0, s(0));
        check(3, None, 0.25, s(1710));
        // Out of range or NaN jitter cannot leave the ±10% band.
        check(2, None, -3.0, s(270));
        check(2, None, 7.0, s(330));
        check(2, None, f64::NAN, s(300));
        // Retry-After is a floor, capped at 24h.
        check(1, s(7), 0.5, s(7));
        check(0, s(7), 0.5, s(7));
        check(2, s(7), 0.0, s(270));
        check(7, s(40 * 3600), 0.5, Some(MAX_RETRY_AFTER));
        // A custom schedule of n delays allows n attempts.
        let custom = [Duration::from_secs(1), Duration::from_secs(2)];
        assert_eq!(next_delay(&custom, 1, None, 0.5), s(2));
        assert_eq!(next_delay(&custom, 2, None, 0.5), None);
    }

    #[test]
    fn jitter_stays_in_band() {
        for _ in 0..1000 {
            let d = next_delay(&DEFAULT_SCHEDULE, 4, None, fastrand::f64()).unwrap();
            assert!(
                d >= Duration::from_secs(6480) && d <= Duration::from_secs(7920),
                "{d:?}"
            );
        }
    }
}
