//! stub: being written
use std::future::Future;
use std::time::Duration;

use crate::provider::ProviderError;

/// Exponential backoff with jitter, for retryable provider errors.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Give up once this much time has passed since the first attempt.
    pub max_elapsed: Duration,
    pub initial_delay: Duration,
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

/// Calls `f` until it succeeds, fails with a non-retryable error, or the
/// policy's time runs out (then the last error). `attempts` counts calls.
pub async fn with_retry<T, F, Fut>(_policy: &RetryPolicy, _f: F) -> (Result<T, ProviderError>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    todo!()
}
