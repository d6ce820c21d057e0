//! Injected time.
//!
//! Everything that reads a clock or waits (lock expiry, backoff, request
//! timeouts, injected latency, claim timestamps) goes through a [`Clock`], so
//! tests of leases and timeouts run deterministically in virtual time. The
//! workspace's clippy configuration bans `SystemTime::now`, `Instant::now` and
//! `tokio::time::sleep` everywhere else.
//!
//! | clock | time | use |
//! |---|---|---|
//! | [`SystemClock`] | real | production |
//! | [`TokioClock`] | tokio's clock: virtual under a paused runtime (`#[tokio::test(start_paused = true)]`), which jumps to the next timer whenever every task waits | lease, timeout and fleet tests with many tasks and real `select!`s |
//! | [`ManualClock`] | moves only when told to, or by whoever sleeps on it | step-by-step tests of one protocol participant |
//!
//! A clock has two readings: [`Clock::now`], the wall clock (what is written
//! into documents other machines read), and [`Clock::elapsed`], a monotonic
//! reading that never jumps and only measures intervals on this machine
//! (what lock and lease expiry is judged by).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;

/// A source of wall-clock time, monotonic time and of waiting.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
    /// Monotonic time since an arbitrary origin fixed for this clock: only
    /// differences of two readings mean anything.
    fn elapsed(&self) -> Duration;
    /// Waits for `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
}

/// Runs `fut` for at most `d` on `clock`: `None` when the time ran out first.
/// The future is polled before the timer, so one that is ready at once wins.
pub async fn timeout<F: Future>(clock: &dyn Clock, d: Duration, fut: F) -> Option<F::Output> {
    use futures::future::{Either, select};
    let fut = std::pin::pin!(fut);
    match select(fut, clock.sleep(d)).await {
        Either::Left((v, _)) => Some(v),
        Either::Right(((), _)) => None,
    }
}

/// What a [`heartbeat`] tick tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Keep going.
    Again,
    /// Stop.
    Stop,
}

/// Spawns, on the current tokio runtime, a task that calls `tick` every
/// `every` on `clock`, until `tick` says [`Beat::Stop`] or `stop` resolves
/// (it is raced against every wait). The heartbeat of locks and leases.
///
/// # Panics
/// Outside a tokio runtime.
pub fn heartbeat<S, F, Fut>(clock: Arc<dyn Clock>, every: Duration, stop: S, mut tick: F)
where
    S: Future<Output = ()> + Send + 'static,
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Beat> + Send,
{
    tokio::spawn(async move {
        let mut stop = std::pin::pin!(stop);
        loop {
            match futures::future::select(clock.sleep(every), stop.as_mut()).await {
                futures::future::Either::Right(_) => return,
                futures::future::Either::Left(_) => {}
            }
            if tick().await == Beat::Stop {
                return;
            }
        }
    });
}

/// The real clock: `SystemTime::now`, `Instant::now` and `tokio::time::sleep`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[allow(clippy::disallowed_methods)]
fn process_origin() -> std::time::Instant {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    #[allow(clippy::disallowed_methods)]
    fn elapsed(&self) -> Duration {
        let origin = process_origin();
        std::time::Instant::now().saturating_duration_since(origin)
    }
    #[allow(clippy::disallowed_methods)]
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Tokio's clock. Under a runtime started paused it is virtual: time stands
/// still while any task can run and jumps to the next timer when all wait, so
/// a thousand simulated workers with 20 ms requests run in milliseconds of
/// real time, deterministically. Outside a paused runtime it is real time.
///
/// The wall clock reads `start` plus the tokio time elapsed since the clock
/// was made. Build it inside the runtime.
#[derive(Debug, Clone)]
pub struct TokioClock {
    origin: tokio::time::Instant,
    start: SystemTime,
}

impl TokioClock {
    /// A clock whose wall time starts at `start` now.
    pub fn new(start: SystemTime) -> Arc<Self> {
        Arc::new(TokioClock {
            origin: tokio::time::Instant::now(),
            start,
        })
    }

    /// A clock whose wall time starts at 2026-01-01T00:00:00Z.
    pub fn fixed() -> Arc<Self> {
        Self::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.start + self.elapsed()
    }
    fn elapsed(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.origin)
    }
    #[allow(clippy::disallowed_methods)]
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// The default clock shared by everything that was not given one.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A clock that only moves when told to, or when somebody sleeps on it.
///
/// `sleep(d)` advances the clock by `d` and returns at once (after yielding),
/// so code that waits for a lease to expire finishes instantly and sees
/// exactly the time it expected.
#[derive(Debug)]
pub struct ManualClock {
    nanos: AtomicU64,
    origin: u64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: SystemTime) -> Arc<Self> {
        let n = start
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        Arc::new(ManualClock {
            nanos: AtomicU64::new(n),
            origin: n,
        })
    }

    /// A clock standing at 2026-01-01T00:00:00Z.
    pub fn fixed() -> Arc<Self> {
        Self::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        self.nanos.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst) - self.origin)
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        self.advance(d);
        Box::pin(tokio::task::yield_now())
    }
}

/// Measures real intervals on the system's monotonic clock (benchmarks and
/// progress reports; `Instant::now` is banned outside this module). Code
/// that should run in virtual time uses [`Clock::elapsed`] instead.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    start: Duration,
}

impl Stopwatch {
    /// Starts now.
    pub fn system() -> Self {
        Stopwatch {
            start: SystemClock.elapsed(),
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        SystemClock.elapsed().saturating_sub(self.start)
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// Formats a time as RFC 3339 UTC with microseconds: `2026-11-24T23:01:42.123456Z`.
pub fn rfc3339_micros(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let (y, mo, da, h, mi, s) = civil(d.as_secs());
    format!(
        "{y:04}-{mo:02}-{da:02}T{h:02}:{mi:02}:{s:02}.{:06}Z",
        d.subsec_micros()
    )
}

/// Formats a time as RFC 3339 UTC to the second: `2026-11-24T23:01:42Z`.
pub fn rfc3339_secs(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let (y, mo, da, h, mi, s) = civil(d.as_secs());
    format!("{y:04}-{mo:02}-{da:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Formats a time compactly for folder names, sortable: `20261124T230142.123456Z`.
pub fn compact_micros(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let (y, mo, da, h, mi, s) = civil(d.as_secs());
    format!(
        "{y:04}{mo:02}{da:02}T{h:02}{mi:02}{s:02}.{:06}Z",
        d.subsec_micros()
    )
}

/// Seconds since the epoch to (year, month, day, hour, minute, second), UTC.
/// The days-to-date step is Howard Hinnant's public-domain civil algorithm.
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_993_302_123_456);
        assert_eq!(rfc3339_micros(t), "2026-11-29T23:01:42.123456Z");
        assert_eq!(compact_micros(t), "20261129T230142.123456Z");
        assert_eq!(
            rfc3339_micros(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_is_virtual_under_a_paused_runtime() {
        let c = TokioClock::fixed();
        let t0 = c.now();
        // An hour passes at once: the runtime jumps to the timer.
        c.sleep(Duration::from_secs(3600)).await;
        assert_eq!(
            c.now().duration_since(t0).unwrap(),
            Duration::from_secs(3600)
        );
        assert_eq!(c.elapsed(), Duration::from_secs(3600));
        // A timeout fires at its deadline, not before, and a ready future wins.
        let slow = timeout(
            c.as_ref(),
            Duration::from_secs(5),
            c.sleep(Duration::from_secs(6)),
        );
        assert!(slow.await.is_none());
        assert_eq!(c.elapsed(), Duration::from_secs(3605));
        let fast = timeout(c.as_ref(), Duration::from_secs(5), async { 7 });
        assert_eq!(fast.await, Some(7));
    }

    #[tokio::test]
    async fn manual_clock_advances_on_sleep() {
        let c = ManualClock::fixed();
        let t0 = c.now();
        c.sleep(Duration::from_secs(5)).await;
        assert_eq!(c.now().duration_since(t0).unwrap(), Duration::from_secs(5));
        assert_eq!(c.elapsed(), Duration::from_secs(5));
    }
}
