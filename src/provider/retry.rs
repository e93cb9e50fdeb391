//! When to retry a request and how long to wait: pure decisions, no sleeping and no HTTP.
//!
//! - 429 and 503 wait for what the server asks (`Retry-After` in seconds or as an HTTP date,
//!   or a rate-limit reset header), capped at the policy's `max_backoff`.
//! - Other 5xx, connection resets and timeouts back off exponentially with jitter.
//! - Everything else (4xx) is not retried: a wrong credential does not get better by asking
//!   again, and hammering the HRIS with it can lock the account.
//!
//! The engine asks [`Policy::decide`] after each failed attempt.

use std::time::Duration;

use crate::config::provider::RetryPolicy;

/// Response headers, looked up by lowercase name.
pub trait Headers {
    /// The header's value, if present.
    fn header(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Headers for F {
    fn header(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// What went wrong with one attempt.
#[derive(Clone, Copy)]
pub enum Failure<'a> {
    /// An HTTP response with a non-success status, and its headers.
    Status(u16, &'a dyn Headers),
    /// The connection failed or was reset, or the body was cut short.
    Connection,
    /// The server did not answer in time.
    Timeout,
}

impl std::fmt::Debug for Failure<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status(s, _) => write!(f, "Status({s})"),
            Failure::Connection => f.write_str("Connection"),
            Failure::Timeout => f.write_str("Timeout"),
        }
    }
}

/// The decision after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again after this long.
    RetryAfter(Duration),
    /// Give up: not retryable, or out of attempts.
    GiveUp,
}

/// A retry policy with its limits resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Most attempts, the first included.
    pub max_attempts: u32,
    /// First backoff.
    pub initial: Duration,
    /// Longest backoff, and longest server-requested wait honoured.
    pub max: Duration,
}

impl From<&RetryPolicy> for Policy {
    fn from(p: &RetryPolicy) -> Policy {
        Policy {
            max_attempts: p.max_attempts,
            initial: p.initial_backoff.get(),
            max: p.max_backoff.get(),
        }
    }
}

impl Policy {
    /// After failed attempt number `attempt` (1-based): wait and retry, or give up.
    /// `now` is for HTTP-date `Retry-After` values.
    pub fn decide(&self, attempt: u32, failure: Failure<'_>, now: jiff::Timestamp) -> Decision {
        if attempt >= self.max_attempts {
            return Decision::GiveUp;
        }
        match failure {
            Failure::Status(429 | 503, header) => {
                let asked = server_wait(header, now);
                Decision::RetryAfter(
                    asked.map_or_else(|| self.backoff(attempt), |d| d.min(self.max)),
                )
            }
            Failure::Status(500..=599, _) | Failure::Connection | Failure::Timeout => {
                Decision::RetryAfter(self.backoff(attempt))
            }
            Failure::Status(..) => Decision::GiveUp,
        }
    }

    /// Exponential backoff with "equal jitter": half the delay is fixed, half random, so
    /// retries from many requests spread out but never come back immediately.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .initial
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max);
        let half = exp / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// How long the server asks us to wait: `Retry-After` (seconds or HTTP date), else
/// `RateLimit-Reset` / `X-RateLimit-Reset` (seconds, or a Unix time when it is that large).
pub fn server_wait(headers: &dyn Headers, now: jiff::Timestamp) -> Option<Duration> {
    if let Some(v) = headers.header("retry-after") {
        let v = v.trim();
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = jiff::fmt::rfc2822::parse(v) {
            return Some(until(at.timestamp(), now));
        }
    }
    for name in ["ratelimit-reset", "x-ratelimit-reset", "x-rate-limit-reset"] {
        if let Some(v) = headers.header(name)
            && let Ok(n) = v.trim().parse::<f64>()
            && n.is_finite()
            && n >= 0.0
        {
            // Some APIs send seconds to wait, others the Unix time of the reset.
            if n > 1_000_000_000.0 {
                let at = jiff::Timestamp::from_second(n as i64).ok()?;
                return Some(until(at, now));
            }
            return Some(Duration::from_secs_f64(n));
        }
    }
    None
}

fn until(at: jiff::Timestamp, now: jiff::Timestamp) -> Duration {
    let d = at.duration_since(now);
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            max_attempts: 5,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn now() -> jiff::Timestamp {
        "2026-11-21T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn retry_after_in_seconds_and_as_an_http_date() {
        let h = headers(&[("Retry-After", "2")]);
        assert_eq!(
            policy().decide(1, Failure::Status(429, &h), now()),
            Decision::RetryAfter(Duration::from_secs(2))
        );
        let h = headers(&[("Retry-After", "Sat, 21 Nov 2026 12:00:30 GMT")]);
        assert_eq!(
            policy().decide(1, Failure::Status(503, &h), now()),
            Decision::RetryAfter(Duration::from_secs(30))
        );
        let h = headers(&[("Retry-After", "Sat, 21 Nov 2026 11:00:00 GMT")]);
        assert_eq!(
            server_wait(&h, now()),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
    }

    #[test]
    fn rate_limit_reset_headers() {
        let h = headers(&[("X-RateLimit-Reset", "7")]);
        assert_eq!(server_wait(&h, now()), Some(Duration::from_secs(7)));
        let reset = (now().as_second() + 42).to_string();
        let h = headers(&[("RateLimit-Reset", &reset)]);
        assert_eq!(server_wait(&h, now()), Some(Duration::from_secs(42)));
    }

    #[test]
    fn server_waits_are_capped_and_attempts_are_bounded() {
        let h = headers(&[("Retry-After", "3600")]);
        assert_eq!(
            policy().decide(1, Failure::Status(429, &h), now()),
            Decision::RetryAfter(Duration::from_secs(60))
        );
        assert_eq!(
            policy().decide(5, Failure::Status(429, &h), now()),
            Decision::GiveUp
        );
    }

    #[test]
    fn client_errors_are_not_retried() {
        let h = headers(&[]);
        for status in [400, 401, 403, 404, 422] {
            assert_eq!(
                policy().decide(1, Failure::Status(status, &h), now()),
                Decision::GiveUp,
                "{status}"
            );
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_within_bounds() {
        let p = policy();
        for attempt in 1..=10 {
            let exp = Duration::from_secs(1 << (attempt - 1)).min(p.max);
            for _ in 0..50 {
                let d = p.backoff(attempt);
                assert!(
                    d >= exp / 2 && d <= exp,
                    "attempt {attempt}: {d:?} not in [{:?}, {exp:?}]",
                    exp / 2
                );
            }
        }
        let h = headers(&[]);
        for f in [
            Failure::Status(500, &h),
            Failure::Status(502, &h),
            Failure::Connection,
            Failure::Timeout,
        ] {
            assert!(
                matches!(p.decide(2, f, now()), Decision::RetryAfter(_)),
                "{f:?}"
            );
        }
        let far = p.backoff(100); // 2^99 seconds would overflow; it is capped instead
        assert!(far >= p.max / 2 && far <= p.max, "{far:?}");
    }
}
