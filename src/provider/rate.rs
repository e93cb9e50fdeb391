//! The declared rate limit of a provider, shared by every request of one source (all its
//! streams, logins included): a token bucket refilled at `requests_per_minute`, holding at
//! most `burst` requests.
//!
//! Hand-written rather than taken from a crate: it is a dozen lines, and it runs on tokio's
//! clock, so tests can check minutes of pacing in virtual time.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::provider::RateLimit;

/// A token bucket.
#[derive(Debug)]
pub struct Limiter {
    per_second: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Limiter {
    /// A limiter for a declared rate; `None` when the provider declares none.
    pub fn new(limit: Option<&RateLimit>) -> Option<Limiter> {
        let limit = limit?;
        let burst = f64::from(limit.burst.unwrap_or(1).max(1));
        Some(Limiter {
            per_second: f64::from(limit.requests_per_minute.max(1)) / 60.0,
            burst,
            state: Mutex::new((burst, Instant::now())),
        })
    }

    /// Waits until a request may go.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut state = self.state.lock().await;
                let (tokens, last) = &mut *state;
                let now = Instant::now();
                *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second)
                    .min(self.burst);
                *last = now;
                if *tokens >= 1.0 {
                    *tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - *tokens) / self.per_second)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rpm: u32, burst: Option<u32>) -> Limiter {
        Limiter::new(Some(&RateLimit {
            requests_per_minute: rpm,
            burst,
        }))
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_requests_are_paced() {
        let l = limiter(60, Some(3));
        let start = Instant::now();
        for _ in 0..3 {
            l.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst is immediate");
        for _ in 0..4 {
            l.acquire().await;
        }
        let e = start.elapsed().as_secs_f64();
        assert!(
            (3.99..4.1).contains(&e),
            "4 more at one per second took {e}s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn hibob_fifty_per_minute_over_a_hundred_requests() {
        let l = limiter(50, None);
        let start = Instant::now();
        for _ in 0..100 {
            l.acquire().await;
        }
        // The first goes at once; 99 more at 1.2 s each.
        let e = start.elapsed().as_secs_f64();
        assert!((118.7..119.1).contains(&e), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_budget() {
        let l = std::sync::Arc::new(limiter(120, Some(1)));
        let start = Instant::now();
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move { l.acquire().await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let e = start.elapsed().as_secs_f64();
        assert!(
            (2.49..2.6).contains(&e),
            "six requests at two per second took {e}s"
        );
    }

    #[test]
    fn no_declared_limit_means_no_limiter() {
        assert!(Limiter::new(None).is_none());
    }
}
