//! Bounded, jittered retries of transient failures.
//!
//! Only [`Transient`](crate::ErrorKind::Transient) errors are retried. A lost
//! race (`AlreadyExists`, `Precondition`) is an answer, not a failure, and is
//! returned at once. The schedule is backon's jittered exponential backoff; the
//! waiting goes through the injected [`Clock`].

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::clock::Clock;
use crate::error::Result;

/// How often and how patiently transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first included (1 = no retry).
    pub max_attempts: usize,
    /// The first delay.
    pub min_delay: Duration,
    /// The cap on any single delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts, 20 ms doubling up to 2 s, with full jitter.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The same number of attempts with (almost) no waiting between them,
    /// for tests.
    pub fn no_delay(self) -> Self {
        RetryPolicy {
            min_delay: Duration::from_micros(1),
            max_delay: Duration::from_micros(10),
            ..self
        }
    }

    /// The delays between attempts: jittered, exponential, capped.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.max_attempts.saturating_sub(1))
            .build()
    }

    /// Runs `op` until it succeeds, fails with a non-transient error, or the
    /// attempts run out (then the last error is returned).
    pub async fn run<T, F, Fut>(&self, clock: &dyn Clock, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut delays = self.delays();
        loop {
            match op().await {
                Err(e) if e.is_retryable() => match delays.next() {
                    Some(d) => {
                        tracing::debug!(error = %e, delay_ms = d.as_millis() as u64, "retrying");
                        clock.sleep(d).await;
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::{Error, ErrorKind};

    #[tokio::test]
    async fn retries_transient_only_and_bounded() {
        let clock = ManualClock::fixed();
        let p = RetryPolicy {
            max_attempts: 4,
            ..Default::default()
        };
        let mut n = 0;
        let r: Result<()> = p
            .run(clock.as_ref(), || {
                n += 1;
                async { Err(Error::new(ErrorKind::Transient, "t")) }
            })
            .await;
        assert!(r.unwrap_err().is_retryable());
        assert_eq!(n, 4);

        let mut n = 0;
        let r: Result<()> = p
            .run(clock.as_ref(), || {
                n += 1;
                async { Err(Error::new(ErrorKind::Precondition, "t")) }
            })
            .await;
        assert!(r.unwrap_err().is_precondition());
        assert_eq!(n, 1, "a lost race is never retried");
    }

    #[test]
    fn delays_are_capped() {
        let p = RetryPolicy {
            max_attempts: 30,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        };
        let d: Vec<_> = p.delays().collect();
        assert_eq!(d.len(), 29);
        assert!(d.iter().all(|d| *d <= Duration::from_millis(200)));
    }
}
