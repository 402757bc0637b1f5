//! Backoff for transient failures: exponential with jitter, and the
//! server's `Retry-After` when it sends one.

use std::time::Duration;

use rand::Rng as _;

use super::config::ClientConfig;

const MAX_DELAY: Duration = Duration::from_secs(30);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// 429 and 5xx other than 501 (which will not change on retry).
pub(crate) fn is_transient_status(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error() && status != reqwest::StatusCode::NOT_IMPLEMENTED)
}

/// Delay before retry number `attempt` (0-based): base * 2^attempt, capped,
/// with jitter in [d/2, d] so parallel layer downloads do not retry in step.
pub(crate) fn backoff(config: &ClientConfig, attempt: u32) -> Duration {
    let base = config.retry_base_delay.as_millis() as u64;
    let d = base
        .saturating_mul(1u64 << attempt.min(20))
        .min(MAX_DELAY.as_millis() as u64);
    let low = d / 2;
    Duration::from_millis(if d > low {
        rand::rng().random_range(low..=d)
    } else {
        d
    })
}

/// `Retry-After` in seconds (HTTP dates are rare from registries; ignored).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: u64 = v.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let c = ClientConfig {
            retry_base_delay: Duration::from_millis(100),
            ..Default::default()
        };
        for attempt in 0..40 {
            let d = backoff(&c, attempt);
            let full =
                Duration::from_millis(100u64.saturating_mul(1 << attempt.min(20))).min(MAX_DELAY);
            assert!(d <= full && d >= full / 2, "{attempt}: {d:?}");
        }
    }

    #[test]
    fn retry_after_parsing() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(reqwest::header::RETRY_AFTER, "100000".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn transient_statuses() {
        use reqwest::StatusCode as S;
        for s in [
            S::TOO_MANY_REQUESTS,
            S::INTERNAL_SERVER_ERROR,
            S::BAD_GATEWAY,
            S::SERVICE_UNAVAILABLE,
            S::GATEWAY_TIMEOUT,
        ] {
            assert!(is_transient_status(s), "{s}");
        }
        for s in [
            S::OK,
            S::NOT_FOUND,
            S::UNAUTHORIZED,
            S::NOT_IMPLEMENTED,
            S::BAD_REQUEST,
        ] {
            assert!(!is_transient_status(s), "{s}");
        }
    }
}
