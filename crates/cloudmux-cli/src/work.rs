//! `cloudmux work`: join a session and run a command once per element (or,
//! without a command, print each element).
//!
//! # How a worker runs
//!
//! A *feeder* task owns the [`Worker`] and asks it for the next element
//! whenever one of the `--jobs` slots is free; the main loop runs each
//! element (a child process, or printing it), then settles it:
//!
//! | the run | leased session | default session |
//! |---|---|---|
//! | succeeded | acknowledged ([`Task::ack`]) | nothing to do |
//! | failed | a failed attempt ([`Task::fail`]), retried elsewhere up to `--max-attempts` | a failure record (see [`crate::failures`]) |
//! | failed with a `--no-retry-exit` code | failed for good ([`Task::fail_permanently`]) | a failure record |
//! | interrupted by SIGINT/SIGTERM | given back at once ([`Task::release`]) | a failure record |
//! | its lease was lost | the command is stopped; another worker has the element | - |
//!
//! The feeder's requests are never cancelled half-way (a claim whose create
//! was cut off could be left orphaned); only the main loop reacts to
//! signals.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::element::Element;
use anyhow::{Result, bail};
use cloudmux::clock::{Clock, Stopwatch};
use cloudmux::mux::layout::{DatasetLayout, claim_width};
use cloudmux::mux::{FailOutcome, LeaseEnd, LeaseTerms, MuxId, Task, Worker, WorkerOptions};
use cloudmux::{ErrorKind, Resolver, UPath};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::child::{self, KILL_GRACE, Signals};
use crate::joblog::{self, JobLog};
use crate::{SleepRange, failures};

/// What `work` does with each element.
#[derive(Debug, Clone)]
pub(crate) enum Runner {
    /// Print it (JSON, or `<element> done in <worker>`), then sleep.
    Print { sleep: SleepRange, demo: bool },
    /// Run this command (`{}` in an argument is replaced by the element).
    Command(Vec<String>),
}

/// The options of `cloudmux work`.
#[derive(Debug)]
pub(crate) struct WorkArgs {
    pub(crate) mux_id: String,
    pub(crate) worker_id: Option<String>,
    pub(crate) request_timeout: Duration,
    pub(crate) jobs: usize,
    pub(crate) timeout_per_element: Option<Duration>,
    pub(crate) no_retry_exit: Vec<i32>,
    pub(crate) joblog: Option<PathBuf>,
    pub(crate) shard: Option<(u64, u64)>,
    pub(crate) runner: Runner,
}

/// The exit status when every element this worker ran succeeded.
const OK: u8 = 0;
/// The exit status when some failed (or had their lease taken over).
const SOME_FAILED: u8 = 1;
/// Usage and storage errors.
const ERROR: u8 = 2;

/// Consecutive storage errors the feeder rides out before giving up.
const MAX_STORAGE_RETRIES: u32 = 10;

struct Feed {
    task: Task<Element>,
    _permit: OwnedSemaphorePermit,
}

enum FeedMsg {
    Task(Feed),
    End,
    Error(cloudmux::Error),
}

/// How one run ended.
enum End {
    /// The command exited (successfully or not) by itself.
    Exited(ExitStatus),
    /// Printed (the built-in runner).
    Printed,
    /// Killed after `--timeout-per-element`.
    TimedOut(Option<ExitStatus>),
    /// The lease was lost while it ran: the command was stopped.
    Lost(Option<ExitStatus>),
    /// We forwarded SIGINT/SIGTERM and it did not succeed (or, printing, it
    /// was not finished).
    Interrupted(i32, Option<ExitStatus>),
    /// The command could not be started.
    CannotStart(std::io::Error),
}

struct Ran {
    feed: Feed,
    seq: u64,
    start: SystemTime,
    runtime: Duration,
    command: String,
    end: End,
}

/// What every run needs.
struct Ctx {
    mux_id: String,
    worker_id: String,
    terms: Option<LeaseTerms>,
    runner: Runner,
    timeout: Option<Duration>,
    no_retry_exit: Vec<i32>,
    clock: Arc<dyn Clock>,
    /// Default sessions: where failure records go.
    failed_dir: UPath,
    width: usize,
    joblog: Option<JobLog>,
    /// `Some(signal)` once the worker is stopping: forward it to children.
    stop: watch::Receiver<Option<i32>>,
}

/// Counts for the exit status.
#[derive(Debug, Default)]
struct Tally {
    ran: u64,
    ok: u64,
    failed: u64,
    lost: u64,
    given_back: u64,
    storage_errors: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.ran += o.ran;
        self.ok += o.ok;
        self.failed += o.failed;
        self.lost += o.lost;
        self.given_back += o.given_back;
        self.storage_errors += o.storage_errors;
    }
}

pub(crate) async fn work(args: WorkArgs) -> Result<ExitCode> {
    let mut signals = Signals::new()?;
    let id: MuxId = args.mux_id.parse()?;
    let dataset = cloudmux::AnyResolver
        .resolve(id.dataset_url())
        .await?
        .with_timeout(Some(args.request_timeout));
    let opts = WorkerOptions {
        worker_id: args.worker_id.clone(),
        timeout: Some(args.request_timeout),
        manual_ack: true,
        // One worker per process here: the platform's task index and count
        // (Cloud Run; a batch index with CLOUDMUX_SHARD_COUNT) may place it.
        shard: args.shard.or_else(cloudmux::util::shard_from_env),
        ..WorkerOptions::default()
    };
    let open = Worker::<Element>::open_path(&dataset, id.clone(), opts);
    let worker = tokio::select! {
        w = open => w?,
        sig = signals.recv() => return Ok(signal_exit(sig)),
    };
    let terms = worker.lease_terms().copied();
    let width = claim_width(worker.len());
    let failed_dir = DatasetLayout::new(dataset.clone())
        .session(id.session())?
        .failed()?;
    let joblog = args.joblog.as_deref().map(JobLog::open).transpose()?;
    let (stop_tx, stop_rx) = watch::channel(None);
    let ctx = Arc::new(Ctx {
        mux_id: id.to_string(),
        worker_id: worker.worker_id().to_string(),
        terms,
        runner: args.runner,
        timeout: args.timeout_per_element,
        no_retry_exit: args.no_retry_exit,
        clock: dataset.clock().clone(),
        failed_dir,
        width,
        joblog,
        stop: stop_rx,
    });
    tracing::info!(worker = %ctx.worker_id, leased = terms.is_some(), jobs = args.jobs, "joined the session");

    let slots = Arc::new(Semaphore::new(args.jobs));
    let (tx, mut rx) = mpsc::channel::<FeedMsg>(args.jobs);
    let busy = Arc::new(AtomicBool::new(false));
    let mut feeder = tokio::spawn(feed(worker, slots.clone(), tx, busy.clone()));

    let mut running = FuturesUnordered::new();
    let mut tally = Tally::default();
    let mut seq = 0u64;
    let mut stopping: Option<i32> = None;
    let mut fed_out = false;
    let mut fatal: Option<anyhow::Error> = None;
    loop {
        if (fed_out || stopping.is_some() || fatal.is_some()) && running.is_empty() {
            break;
        }
        tokio::select! {
            sig = signals.recv() => {
                match stopping {
                    None => {
                        eprintln!(
                            "cloudmux: {} received: taking no new elements; waiting for {} running",
                            child::signal_name(sig),
                            running.len()
                        );
                        stopping = Some(sig);
                        slots.close();
                        stop_tx.send_replace(Some(sig));
                    }
                    Some(_) => {
                        eprintln!("cloudmux: second signal: killing the running commands");
                        stop_tx.send_replace(Some(9));
                    }
                }
            }
            msg = rx.recv(), if !fed_out && stopping.is_none() && fatal.is_none() => match msg {
                Some(FeedMsg::Task(feed)) => {
                    seq += 1;
                    let ctx = ctx.clone();
                    // Run and settle in one future, so that the settling
                    // requests of several elements overlap too.
                    running.push(async move {
                        let ran = run(ctx.clone(), feed, seq).await;
                        let mut t = Tally::default();
                        let r = settle(&ctx, ran, &mut t).await;
                        (t, r)
                    });
                }
                Some(FeedMsg::End) | None => fed_out = true,
                Some(FeedMsg::Error(e)) => {
                    slots.close();
                    fatal = Some(e.into());
                }
            },
            Some((t, r)) = running.next(), if !running.is_empty() => {
                tally.add(&t);
                if let Err(e) = r {
                    slots.close();
                    fatal.get_or_insert(e);
                }
            }
        }
    }
    // Stopping: elements the feeder obtained and nobody ran, or was still
    // obtaining, are given back.
    let mut stuck = false;
    if let Some(sig) = stopping {
        let why = format!(
            "not run: the worker was stopped by {}",
            child::signal_name(sig)
        );
        let mut unrun = Vec::new();
        while let Ok(msg) = rx.try_recv() {
            if let FeedMsg::Task(feed) = msg {
                unrun.push(feed);
            }
        }
        if busy.load(Ordering::SeqCst) {
            match cloudmux::clock::timeout(ctx.clock.as_ref(), Duration::from_secs(3), rx.recv())
                .await
            {
                Some(Some(FeedMsg::Task(feed))) => unrun.push(feed),
                Some(_) => {}
                // Still waiting (a leased worker watching for expired
                // leases): not worth waiting longer for.
                None => stuck = true,
            }
        }
        for feed in &unrun {
            give_back(&ctx, feed, &why, &mut tally).await;
        }
    }
    // The feeder ends once its slots are closed or its channel is gone;
    // then the worker's last summary goes out, so `stat` counts what this
    // worker claimed even when it was stopped early.
    slots.close();
    drop(rx);
    let grace = ctx.clock.as_ref();
    let ended = if stuck {
        None
    } else {
        cloudmux::clock::timeout(grace, Duration::from_secs(3), &mut feeder).await
    };
    match ended {
        Some(Ok(mut worker)) => {
            let flush = worker.flush();
            if cloudmux::clock::timeout(grace, Duration::from_secs(5), flush)
                .await
                .is_none()
            {
                tracing::warn!("the worker summary could not be written in time");
            }
        }
        _ => feeder.abort(),
    }
    if let Some(sig) = stopping {
        summary(&tally);
        return Ok(signal_exit(sig));
    }
    if let Some(e) = fatal {
        summary(&tally);
        return Err(e);
    }
    summary(&tally);
    Ok(ExitCode::from(if tally.storage_errors > 0 {
        ERROR
    } else if tally.failed + tally.lost > 0 {
        SOME_FAILED
    } else {
        OK
    }))
}

fn signal_exit(sig: i32) -> ExitCode {
    ExitCode::from(u8::try_from(128 + sig).unwrap_or(255))
}

fn summary(t: &Tally) {
    tracing::info!(?t, "worker finished");
    let bad = t.failed + t.lost;
    if bad > 0 {
        let mut parts = Vec::new();
        if t.failed > 0 {
            parts.push(format!("{} failed", t.failed));
        }
        if t.lost > 0 {
            parts.push(format!("{} lost their lease to another worker", t.lost));
        }
        eprintln!(
            "cloudmux: {bad} of this worker's {} runs did not succeed ({})",
            t.ran,
            parts.join(", ")
        );
    }
    if t.given_back > 0 {
        eprintln!(
            "cloudmux: {} unfinished element(s) given back",
            t.given_back
        );
    }
}

/// The feeder: asks the worker for an element whenever a slot is free.
async fn feed(
    mut worker: Worker<Element>,
    slots: Arc<Semaphore>,
    tx: mpsc::Sender<FeedMsg>,
    busy: Arc<AtomicBool>,
) -> Worker<Element> {
    let clock = cloudmux::clock::system();
    let mut errors = 0u32;
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return worker;
        };
        busy.store(true, Ordering::SeqCst);
        let next = worker.next_task().await;
        busy.store(false, Ordering::SeqCst);
        let msg = match next {
            None => FeedMsg::End,
            Some(Ok(task)) => {
                errors = 0;
                FeedMsg::Task(Feed {
                    task,
                    _permit: permit,
                })
            }
            Some(Err(e))
                if (e.is_retryable() || e.is_outcome_unknown()) && errors < MAX_STORAGE_RETRIES =>
            {
                // The worker settles an uncertain claim on the next call.
                errors += 1;
                tracing::warn!(error = %e, "storage error; continuing");
                drop(permit);
                clock.sleep(Duration::from_millis(200) * errors).await;
                continue;
            }
            Some(Err(e)) => FeedMsg::Error(e),
        };
        let last = !matches!(msg, FeedMsg::Task(_));
        if tx.send(msg).await.is_err() || last {
            return worker;
        }
    }
}

/// Replaces `{}` in each argument with the element: a string as itself,
/// anything else as compact JSON.
pub(crate) fn substitute(argv: &[String], v: &Value) -> Vec<String> {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    argv.iter().map(|a| a.replace("{}", &text)).collect()
}

/// Runs one element.
async fn run(ctx: Arc<Ctx>, feed: Feed, seq: u64) -> Ran {
    let start = ctx.clock.now();
    let watch = Stopwatch::system();
    let (command, end) = match &ctx.runner {
        Runner::Print { sleep, demo } => {
            (String::new(), print(&ctx, &feed.task, *sleep, *demo).await)
        }
        Runner::Command(argv) => {
            let argv = substitute(argv, &feed.task.value.0);
            let line = joblog::command_line(&argv);
            (line, run_command(&ctx, &feed.task, &argv).await)
        }
    };
    Ran {
        feed,
        seq,
        start,
        runtime: watch.elapsed(),
        command,
        end,
    }
}

async fn print(ctx: &Ctx, task: &Task<Element>, sleep: SleepRange, demo: bool) -> End {
    let line = if demo {
        format!("{} done in {}", task.value.0, ctx.worker_id)
    } else {
        task.value.0.to_string()
    };
    if !demo {
        // Printed when obtained: a worker killed while holding an element
        // has it as its last line.
        emit(&line);
    }
    let d = sleep.draw();
    if !d.is_zero() {
        let mut stop = ctx.stop.clone();
        tokio::select! {
            _ = ctx.clock.sleep(d) => {}
            r = stop.wait_for(Option::is_some) => {
                let sig = r.map(|s| s.unwrap_or(15)).unwrap_or(15);
                return End::Interrupted(sig, None);
            }
        }
    }
    if demo {
        emit(&line);
    }
    End::Printed
}

fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Why we signalled a running command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    TimedOut,
    Lost,
    Stopped(i32),
}

async fn run_command(ctx: &Ctx, task: &Task<Element>, argv: &[String]) -> End {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env("CLOUDMUX_ELEMENT", task.value.0.to_string())
        .env("CLOUDMUX_INDEX", task.index.to_string())
        .env("CLOUDMUX_ATTEMPT", task.attempt().to_string())
        .env("CLOUDMUX_MUX_ID", &ctx.mux_id)
        .env("CLOUDMUX_WORKER_ID", &ctx.worker_id)
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return End::CannotStart(e),
    };
    let pid = child.id();
    let mut stop = ctx.stop.clone();
    if let Some(sig) = *stop.borrow_and_update() {
        child::signal_group(pid, child::signal_of(sig));
    }
    let mut lost = task.lease().map(|l| l.watch_lost());
    let leased = lost.is_some();
    let watch = Stopwatch::system();
    let mut why: Option<Why> = None;
    let mut kill_at: Option<Duration> = None;
    loop {
        let now = watch.elapsed();
        let until_timeout = match (ctx.timeout, why) {
            (Some(t), None) => Some(t.saturating_sub(now)),
            _ => None,
        };
        let until_kill = kill_at.map(|k| k.saturating_sub(now));
        let timeout_sleep = ctx.clock.sleep(until_timeout.unwrap_or(Duration::ZERO));
        let kill_sleep = ctx.clock.sleep(until_kill.unwrap_or(Duration::ZERO));
        let lease_lost = async {
            match lost.as_mut() {
                Some(rx) => {
                    let _ = rx.wait_for(|e| *e == LeaseEnd::Lost).await;
                }
                None => futures::future::pending::<()>().await,
            }
        };
        tokio::select! {
            status = child.wait() => {
                let status = match status {
                    Ok(s) => s,
                    Err(e) => return End::CannotStart(e),
                };
                return match why {
                    None => End::Exited(status),
                    Some(_) if status.success() => End::Exited(status),
                    Some(Why::TimedOut) => End::TimedOut(Some(status)),
                    Some(Why::Lost) => End::Lost(Some(status)),
                    Some(Why::Stopped(sig)) => End::Interrupted(sig, Some(status)),
                };
            }
            _ = timeout_sleep, if until_timeout.is_some() => {
                child::signal_group(pid, rustix::process::Signal::TERM);
                why = Some(Why::TimedOut);
                kill_at = Some(watch.elapsed() + KILL_GRACE);
            }
            _ = lease_lost, if why.is_none() && leased => {
                child::signal_group(pid, rustix::process::Signal::TERM);
                why = Some(Why::Lost);
                kill_at = Some(watch.elapsed() + KILL_GRACE);
            }
            r = stop.changed() => {
                if r.is_err() {
                    continue;
                }
                if let Some(sig) = *stop.borrow_and_update() {
                    child::signal_group(pid, child::signal_of(sig));
                    if why.is_none() {
                        why = Some(Why::Stopped(sig));
                    }
                }
            }
            _ = kill_sleep, if until_kill.is_some() => {
                child::signal_group(pid, rustix::process::Signal::KILL);
                kill_at = None;
            }
        }
    }
}

/// `element 17 ({"x":1})`, the value cut to 120 characters.
fn describe_element(task: &Task<Element>) -> String {
    let s = task.value.0.to_string();
    let s = if s.chars().count() > 120 {
        format!("{}...", s.chars().take(117).collect::<String>())
    } else {
        s
    };
    format!("element {} ({s})", task.index)
}

/// Retries a lease operation on transient storage errors; `Fenced` and
/// other definite answers come back at once.
async fn persist<T, F, Fut>(clock: &dyn Clock, mut op: F) -> cloudmux::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = cloudmux::Result<T>>,
{
    let mut n = 0u32;
    loop {
        match op().await {
            Err(e) if (e.is_retryable() || e.is_outcome_unknown()) && n < 4 => {
                n += 1;
                tracing::warn!(error = %e, "storage error while settling an element; retrying");
                clock.sleep(Duration::from_millis(250) * 2u32.pow(n)).await;
            }
            r => return r,
        }
    }
}

/// Settles a run: acknowledges, fails, records or gives back its element.
async fn settle(ctx: &Ctx, ran: Ran, tally: &mut Tally) -> Result<()> {
    let task = &ran.feed.task;
    tally.ran += 1;
    let (exitval, signal) = match &ran.end {
        End::Exited(s)
        | End::TimedOut(Some(s))
        | End::Lost(Some(s))
        | End::Interrupted(_, Some(s)) => {
            use std::os::unix::process::ExitStatusExt;
            (s.code().unwrap_or(-1), s.signal().unwrap_or(0))
        }
        End::Printed => (0, 0),
        _ => (-1, 0),
    };
    if let Some(log) = &ctx.joblog {
        log.record(&joblog::Entry {
            seq: ran.seq,
            start: ran.start,
            runtime: ran.runtime,
            exitval,
            signal,
            command: &ran.command,
            index: task.index,
            attempt: task.attempt(),
        });
    }
    let what = describe_element(task);
    let failure = match &ran.end {
        End::Printed => None,
        End::Exited(s) if s.success() => None,
        End::Exited(s) => Some((
            child::describe(s),
            s.code().is_some_and(|c| ctx.no_retry_exit.contains(&c)),
        )),
        End::TimedOut(_) => Some((
            format!(
                "timed out after {} s (--timeout-per-element)",
                ctx.timeout.unwrap_or_default().as_secs_f64()
            ),
            false,
        )),
        End::CannotStart(e) => {
            let reason = format!("cannot run the command: {e}");
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) {
                give_back(ctx, &ran.feed, &reason, tally).await;
                tally.ran = tally.ran.saturating_sub(1);
                bail!("{reason}");
            }
            Some((reason, false))
        }
        End::Lost(_) => {
            eprintln!(
                "cloudmux: {what}: the lease was lost (another worker took the element over); \
                 the command was stopped and its result discarded"
            );
            tally.lost += 1;
            return Ok(());
        }
        End::Interrupted(sig, _) => {
            give_back(
                ctx,
                &ran.feed,
                &format!("interrupted by {}", child::signal_name(*sig)),
                tally,
            )
            .await;
            return Ok(());
        }
    };
    match failure {
        None => match persist(ctx.clock.as_ref(), || task.ack()).await {
            Ok(()) => tally.ok += 1,
            Err(e) if e.kind() == ErrorKind::Fenced => {
                eprintln!(
                    "cloudmux: {what} (attempt {}): acknowledgement refused: the lease was lost \
                         and another worker took the element over; this result is discarded",
                    task.attempt()
                );
                tally.lost += 1;
            }
            Err(e) => {
                eprintln!("cloudmux: {what}: could not acknowledge: {e}");
                tally.storage_errors += 1;
            }
        },
        Some((reason, permanent)) => {
            tally.failed += 1;
            fail(ctx, task, &what, &reason, permanent, tally).await;
        }
    }
    Ok(())
}

/// Reports a failed run.
async fn fail(
    ctx: &Ctx,
    task: &Task<Element>,
    what: &str,
    reason: &str,
    permanent: bool,
    tally: &mut Tally,
) {
    let Some(terms) = ctx.terms else {
        let r = failures::record(
            &ctx.failed_dir,
            ctx.width,
            task.index,
            &ctx.worker_id,
            reason,
        )
        .await;
        match r {
            Ok(()) => eprintln!(
                "cloudmux: {what} failed: {reason} (recorded in the session; `cloudmux stat` lists it)"
            ),
            Err(e) => {
                eprintln!(
                    "cloudmux: {what} failed: {reason}; the failure could not be recorded: {e}"
                );
                tally.storage_errors += 1;
            }
        }
        return;
    };
    let r = if permanent {
        persist(ctx.clock.as_ref(), || async {
            match task.lease() {
                Some(l) => l.fail_permanently(reason).await,
                None => task.fail(reason).await,
            }
        })
        .await
    } else {
        persist(ctx.clock.as_ref(), || task.fail(reason)).await
    };
    match r {
        Ok(outcome) => {
            let next = if permanent {
                "failed for good (--no-retry-exit)".to_string()
            } else if outcome == FailOutcome::Failed {
                format!(
                    "failed for good after {} failed attempts",
                    terms.max_attempts
                )
            } else {
                "given back for another attempt".to_string()
            };
            eprintln!(
                "cloudmux: {what} failed on attempt {}: {reason}; {next}",
                task.attempt()
            );
        }
        Err(e) if e.kind() == ErrorKind::Fenced => {
            eprintln!(
                "cloudmux: {what} failed ({reason}), but its lease was already lost: another worker has it"
            );
        }
        Err(e) => {
            eprintln!("cloudmux: {what} failed ({reason}); the failure could not be reported: {e}");
            tally.storage_errors += 1;
        }
    }
}

/// Gives an unfinished element back: released at once in a leased
/// session, recorded as failed in a default one (it cannot be handed out
/// again there).
async fn give_back(ctx: &Ctx, feed: &Feed, reason: &str, tally: &mut Tally) {
    let task = &feed.task;
    let what = describe_element(task);
    if ctx.terms.is_some() {
        match persist(ctx.clock.as_ref(), || task.release()).await {
            Ok(()) => {
                tally.given_back += 1;
                tracing::info!(index = task.index, "released: {reason}");
            }
            Err(e) if e.kind() == ErrorKind::Fenced => tally.lost += 1,
            Err(e) => {
                eprintln!("cloudmux: {what}: could not be given back ({e}); its lease will expire");
                tally.storage_errors += 1;
            }
        }
    } else {
        match failures::record(
            &ctx.failed_dir,
            ctx.width,
            task.index,
            &ctx.worker_id,
            reason,
        )
        .await
        {
            Ok(()) => {
                tally.failed += 1;
                eprintln!(
                    "cloudmux: {what}: {reason} (recorded as failed: a default session hands it out only once)"
                );
            }
            Err(e) => {
                eprintln!("cloudmux: {what}: {reason}; could not be recorded: {e}");
                tally.storage_errors += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braces_become_the_element() {
        let argv: Vec<String> = ["echo", "{}", "out/{}.txt", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            substitute(&argv, &serde_json::json!("a b")),
            ["echo", "a b", "out/a b.txt", "x"]
        );
        assert_eq!(
            substitute(&argv, &serde_json::json!({"k": [1, "two"]})),
            [
                "echo",
                r#"{"k":[1,"two"]}"#,
                r#"out/{"k":[1,"two"]}.txt"#,
                "x"
            ]
        );
        assert_eq!(substitute(&argv, &serde_json::json!(7))[1], "7");
    }
}
