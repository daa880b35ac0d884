//! How often and how patiently the client retries: exponential backoff with
//! jitter, bounded in attempts.

use std::future::Future;
use std::time::Duration;

use crate::error::Result;

/// Retries of one operation: after the `n`th failure (from 0) the client
/// waits a random time between half and all of
/// `min(initial_backoff * multiplier^n, max_backoff)`, then tries again,
/// at most `attempts_max` attempts in all. The count starts over whenever
/// the operation makes progress (a pipelined producer's acknowledgement, a
/// follow stream's record).
///
/// The default (10 attempts, 50 ms doubling to 2 s) rides out a Raft
/// election (1-2 s) and a node restart with a few seconds to spare, and
/// gives up within about 10 s when the cluster is really gone.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry.
    pub attempts_max: u32,
    /// The wait after the first failure, before jitter.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts, before jitter.
    pub max_backoff: Duration,
    /// Growth of the wait per failure.
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts_max: 10,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// No retry at all: every failure is returned at once.
    pub fn none() -> Self {
        Self {
            attempts_max: 1,
            ..Self::default()
        }
    }

    /// The wait after failure number `failure` (from 0), given a uniform
    /// random `unit` in `[0, 1)`: "equal jitter", so the wait is never
    /// shorter than half the exponential step (clients that fail together
    /// spread out, and none hammers a node with near-zero waits).
    pub fn backoff(&self, failure: u32, unit: f64) -> Duration {
        let exponent = i32::try_from(failure).unwrap_or(i32::MAX);
        let step = self.initial_backoff.as_secs_f64() * self.multiplier.max(1.0).powi(exponent);
        let step = step.min(self.max_backoff.as_secs_f64());
        let unit = unit.clamp(0.0, 1.0);
        Duration::from_secs_f64(step / 2.0 + step / 2.0 * unit)
    }

    /// Validates the policy.
    ///
    /// # Errors
    /// A message naming the field: no attempt at all, a multiplier below 1
    /// or not finite, or an initial backoff above the maximum.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.attempts_max == 0 {
            return Err("retry.attempts_max must be at least 1".to_owned());
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(format!(
                "retry.multiplier must be at least 1, not {}",
                self.multiplier
            ));
        }
        if self.initial_backoff > self.max_backoff {
            return Err("retry.initial_backoff must not exceed retry.max_backoff".to_owned());
        }
        Ok(())
    }
}

/// The attempts of one operation under a [`RetryPolicy`].
#[derive(Debug)]
pub(crate) struct Attempts {
    policy: RetryPolicy,
    failures: u32,
}

impl Attempts {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            failures: 0,
        }
    }

    /// Notes a failure; the wait before the next attempt, or `None` when
    /// the policy's attempts are used up.
    pub(crate) fn failed(&mut self) -> Option<Duration> {
        self.failures += 1;
        if self.failures >= self.policy.attempts_max {
            return None;
        }
        Some(
            self.policy
                .backoff(self.failures - 1, rand::random::<f64>()),
        )
    }

    /// The operation made progress: the next failure waits the shortest
    /// time again and has all attempts ahead of it.
    pub(crate) fn progressed(&mut self) {
        self.failures = 0;
    }
}

/// Runs `operation` until it succeeds, fails in a way no retry can fix, or
/// the policy's attempts are used up, sleeping the backoff in between.
///
/// # Errors
/// The last failure.
pub(crate) async fn retrying<T, F, Fut>(policy: &RetryPolicy, mut operation: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempts = Attempts::new(policy.clone());
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(error) if error.is_retryable() => match attempts.failed() {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(error),
            },
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_keeps_half_of_each_step() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(0, 0.0), Duration::from_millis(25));
        assert_eq!(policy.backoff(0, 1.0), Duration::from_millis(50));
        assert_eq!(policy.backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(policy.backoff(3, 0.5), Duration::from_millis(300));
        // 50 ms * 2^10 is far past the cap.
        assert_eq!(policy.backoff(10, 1.0), Duration::from_secs(2));
        assert_eq!(policy.backoff(u32::MAX, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn attempts_end_at_the_policy_bound_and_start_over_on_progress() {
        let mut attempts = Attempts::new(RetryPolicy {
            attempts_max: 3,
            ..RetryPolicy::default()
        });
        assert!(attempts.failed().is_some());
        assert!(attempts.failed().is_some());
        assert!(attempts.failed().is_none(), "three attempts in all");
        attempts.progressed();
        assert!(attempts.failed().is_some());
        assert!(attempts.failed().is_some(), "all attempts ahead again");
        assert!(Attempts::new(RetryPolicy::none()).failed().is_none());
    }

    fn unavailable() -> crate::Error {
        crate::Error::Unavailable {
            message: "no leader".to_owned(),
        }
    }

    /// Fails `failures` times with `error`, then answers; counts the calls.
    async fn flaky(
        policy: &RetryPolicy,
        failures: u32,
        error: crate::Error,
    ) -> (Result<u32>, u32, Duration) {
        let started = tokio::time::Instant::now();
        let calls = std::cell::Cell::new(0);
        let result = retrying(policy, || {
            calls.set(calls.get() + 1);
            let call = calls.get();
            let error = error.clone();
            async move {
                if call <= failures {
                    Err(error)
                } else {
                    Ok(call)
                }
            }
        })
        .await;
        (result, calls.get(), started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn retries_wait_the_jittered_exponential_backoff_under_a_paused_clock() {
        let policy = RetryPolicy::default();
        let (result, calls, waited) = flaky(&policy, 3, unavailable()).await;
        assert_eq!(result.expect("fourth call answers"), 4);
        assert_eq!(calls, 4);
        // Waits of 50, 100 and 200 ms steps, each between half and all.
        let (shortest, longest) = (Duration::from_micros(175_000), Duration::from_millis(350));
        assert!(
            (shortest..=longest).contains(&waited),
            "waited {waited:?}, expected {shortest:?}..={longest:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_attempt_bound_and_never_for_a_final_error() {
        let policy = RetryPolicy {
            attempts_max: 4,
            ..RetryPolicy::default()
        };
        let (result, calls, _) = flaky(&policy, 100, unavailable()).await;
        assert!(matches!(result, Err(crate::Error::Unavailable { .. })));
        assert_eq!(calls, 4);
        let denied = crate::Error::PermissionDenied {
            message: "no".to_owned(),
        };
        let (result, calls, waited) = flaky(&policy, 100, denied).await;
        assert!(matches!(result, Err(crate::Error::PermissionDenied { .. })));
        assert_eq!((calls, waited), (1, Duration::ZERO));
        // The cap holds however long it runs: 60 failures, each at most 2 s.
        let patient = RetryPolicy {
            attempts_max: 61,
            ..RetryPolicy::default()
        };
        let (result, _, waited) = flaky(&patient, 60, unavailable()).await;
        assert!(result.is_ok());
        assert!(waited <= Duration::from_secs(120), "{waited:?}");
        assert!(waited >= Duration::from_secs(50), "{waited:?}");
    }

    #[test]
    fn a_policy_without_attempts_or_with_a_shrinking_wait_is_refused() {
        assert!(RetryPolicy::default().validate().is_ok());
        let zero = RetryPolicy {
            attempts_max: 0,
            ..RetryPolicy::default()
        };
        assert!(
            zero.validate()
                .expect_err("refused")
                .contains("attempts_max")
        );
        let shrinking = RetryPolicy {
            multiplier: 0.5,
            ..RetryPolicy::default()
        };
        assert!(
            shrinking
                .validate()
                .expect_err("refused")
                .contains("multiplier")
        );
    }
}
