//! Retrying provider calls that failed for a passing reason.
//!
//! Cloud APIs throttle and are eventually consistent: an error of kind
//! [`ErrorKind::Retryable`] is worth another try after a pause. The pause
//! grows exponentially with "equal jitter" (half the delay fixed, half
//! random) so that many operations throttled at once spread out, and the
//! whole sequence never sleeps past the policy's time budget. Uses tokio's
//! clock, so tests with a paused clock run instantly.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::provider::{ErrorKind, ProviderError};

/// Exponential backoff with jitter, for retryable provider errors.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Give up once this much time has passed since the first attempt.
    pub max_elapsed: Duration,
    /// The pause after the first failure (before jitter); doubled after each.
    pub initial_delay: Duration,
    /// The longest pause (before jitter).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_elapsed: Duration::from_secs(120),
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// A tiny, fast pseudo-random generator (SplitMix64): enough for jitter
/// and for shuffling, with no dependency.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// Seeded from the wall clock and a stack address.
    pub(crate) fn from_entropy() -> SplitMix64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let local = 0u8;
        SplitMix64(nanos ^ (&local as *const u8 as u64).rotate_left(32))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..bound` (`0` when `bound` is 0).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

/// The pause before retry number `retry` (0 for the first retry), before
/// jitter: `initial_delay · 2^retry`, at most `max_delay`.
fn backoff(policy: &RetryPolicy, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
    policy
        .initial_delay
        .checked_mul(factor)
        .unwrap_or(Duration::MAX)
        .min(policy.max_delay)
}

/// Equal jitter: half of `delay`, plus a random part of the other half.
fn jitter(delay: Duration, rng: &mut SplitMix64) -> Duration {
    let half = delay / 2;
    let spread = u64::try_from((delay - half).as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(rng.below(spread.saturating_add(1)))
}

/// Calls `f` until it succeeds, fails with a non-retryable error, or the
/// policy's time runs out (then the last error). `attempts` counts calls.
///
/// Only [`ErrorKind::Retryable`] errors are retried; `NotFound` and
/// `Fatal` are returned at once. A pause is cut short so as to end at
/// `max_elapsed` after the first attempt, where one last attempt is made;
/// no pause starts once that time has passed.
pub async fn with_retry<T, F, Fut>(policy: &RetryPolicy, f: F) -> (Result<T, ProviderError>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    with_retry_notify(policy, f, |_, _, _| {}).await
}

/// [`with_retry`], calling `on_retry(attempts so far, error, pause)` before
/// each pause, so callers can report what is being retried and why.
pub async fn with_retry_notify<T, F, Fut>(
    policy: &RetryPolicy,
    mut f: F,
    mut on_retry: impl FnMut(u32, &ProviderError, Duration),
) -> (Result<T, ProviderError>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let start = Instant::now();
    let mut rng = SplitMix64::from_entropy();
    let mut attempts = 0u32;
    loop {
        let result = f().await;
        attempts = attempts.saturating_add(1);
        match &result {
            Err(error) if error.kind == ErrorKind::Retryable => {}
            _ => return (result, attempts),
        }
        let left = policy.max_elapsed.saturating_sub(start.elapsed());
        if left.is_zero() {
            return (result, attempts);
        }
        let pause = jitter(backoff(policy, attempts - 1), &mut rng).min(left);
        if let Err(error) = &result {
            on_retry(attempts, error, pause);
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_elapsed: Duration::from_secs(10),
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_then_success() {
        let calls = Cell::new(0);
        let start = Instant::now();
        let (result, attempts) = with_retry(&policy(), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 4 {
                    Err(ProviderError::retryable(format!("throttled {n}")))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result, Ok(4));
        assert_eq!(attempts, 4);
        // Pauses of at least 50, 100 and 200 ms, at most 100, 200, 400.
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(350), "{waited:?}");
        assert!(waited <= Duration::from_millis(701), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_is_not_retried() {
        let start = Instant::now();
        let (result, attempts) = with_retry(&policy(), || async {
            Err::<(), _>(ProviderError::fatal("access denied"))
        })
        .await;
        assert_eq!(result, Err(ProviderError::fatal("access denied")));
        assert_eq!(attempts, 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn not_found_is_not_retried() {
        let (result, attempts) = with_retry(&policy(), || async {
            Err::<(), _>(ProviderError::not_found("no such bucket"))
        })
        .await;
        assert_eq!(result, Err(ProviderError::not_found("no such bucket")));
        assert_eq!(attempts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_elapsed_with_the_last_error() {
        let calls = Cell::new(0u32);
        let start = Instant::now();
        let (result, attempts) = with_retry(&policy(), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { Err::<(), _>(ProviderError::retryable(format!("throttled {n}"))) }
        })
        .await;
        assert_eq!(attempts, calls.get());
        assert_eq!(
            result,
            Err(ProviderError::retryable(format!("throttled {attempts}")))
        );
        // The last attempt lands exactly on the deadline, not past it.
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // Base pauses 100+200+400+800+1600 ms, then 2 s each, jitter
        // taking up to half of each: 10 to 15 attempts fit in 10 s.
        assert!((10..=15).contains(&attempts), "{attempts}");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_attempts_count_against_the_budget() {
        let start = Instant::now();
        let (result, attempts) = with_retry(&policy(), || async {
            tokio::time::sleep(Duration::from_secs(6)).await;
            Err::<(), _>(ProviderError::retryable("timeout"))
        })
        .await;
        assert!(result.is_err());
        // 6 s, a pause, 6 s: past 10 s, so no third attempt.
        assert_eq!(attempts, 2);
        assert!(start.elapsed() <= Duration::from_millis(12_100));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = policy();
        let ms: Vec<u128> = (0..8).map(|r| backoff(&p, r).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert_eq!(backoff(&p, 200), Duration::from_secs(2));
        let mut rng = SplitMix64::new(7);
        for _ in 0..1000 {
            let d = jitter(Duration::from_millis(100), &mut rng);
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(100));
        }
    }
}
