//! `cloudmux`: the command-line face of the Multiplexer.
//!
//! | module | role |
//! |---|---|
//! | `main` | the command line (clap), logging, exit statuses |
//! | [`input`] | the elements of `new`: JSON Lines, a JSON array, `--range` |
//! | [`work`] | `work`: run a command once per element, leases, signals |
//! | [`joblog`] | `work --joblog`: GNU parallel's columns |
//! | [`failures`] | failure records of default sessions |
//! | [`stat`] | `stat` and `stat --watch` at a bounded request cost |
//! | [`lockcmd`] | `lock`, `lock-info`, `force-unlock` |
//! | [`doctor`] | `doctor`, and the check `session` runs once per folder |
//! | [`child`] | child process groups and signals |
//!
//! Errors print one line on stderr; the exit statuses are listed in
//! `cloudmux --help`. No panic trace reaches a user.

mod child;
mod doctor;
mod element;
mod failures;
mod input;
mod joblog;
mod lockcmd;
mod stat;
mod work;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cloudmux::clock::Stopwatch;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand};
use cloudmux::mux::{MuxId, SessionOptions};
use cloudmux::{AnyResolver, Resolver};

const EXIT_STATUSES: &str = "\
Exit status:
  0    success
  1    work: some elements this worker ran failed (the count is on stderr);
       done: the session is not done; doctor: the store fails a check;
       force-unlock: not held with that token (nothing changed);
       stat --watch: the session stopped early (max-failed)
  2    usage errors and storage errors (one line on stderr)
  75   lock: the lock could not be had within --timeout (the line names the holder)
  76   lock: the lock was lost while the command ran (the command got SIGTERM)
  128+N  work, lock, stat --watch: stopped by signal N (130 SIGINT, 143 SIGTERM)
  lock exits with the command's own status otherwise.";

const ENVIRONMENT: &str = "\
Environment:
  RUST_LOG, CLOUDMUX_LOG   log filter (tracing), e.g. RUST_LOG=cloudmux=debug
  CLOUDMUX_MUX_ID          the mux id, for work, stat, done, retry-failed
  AWS_*, GOOGLE_APPLICATION_CREDENTIALS, STORAGE_EMULATOR_HOST, AZURE_STORAGE_*
                           credentials and endpoints of the cloud backends";

const TOP_EXAMPLES: &str = "\
Examples:
  ds=$(seq 0 999 | cloudmux new s3://bucket/jobs --tag sweep)
  id=$(cloudmux session \"$ds\" --lease 60 --max-attempts 3)
  cloudmux work \"$id\" --jobs 4 -- ./simulate --param {}     # on every worker
  cloudmux stat \"$id\" --watch
  cloudmux lock s3://bucket/state/db -- ./migrate.sh";

#[derive(Parser, Debug)]
#[command(
    name = "cloudmux",
    version,
    about = "Share out work among many workers through object storage, with no server",
    long_about = "Share out the elements of a dataset among a fleet of workers through object \
storage alone (S3, GCS, Azure Blob, a local directory), with conditional writes and no server. \
A coordinator runs `new` and `session`; every worker runs `work` with the mux id.",
    after_help = "Run `cloudmux help <command>` for a command's options and examples.",
    after_long_help = format!("{EXIT_STATUSES}\n\n{ENVIRONMENT}\n\n{TOP_EXAMPLES}")
)]
struct Cli {
    /// Log level (error, warn, info, debug, trace) or a tracing filter; RUST_LOG wins.
    /// The default shows cloudmux's own warnings and only errors of the SDKs
    /// underneath (whose warnings, such as a region lookup, are noise before
    /// the one line that says what failed).
    #[arg(long, global = true, env = "CLOUDMUX_LOG", default_value = "error")]
    log: String,
    /// More logging on stderr: -v info, -vv debug, -vvv trace (cloudmux's own crates).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the classic example: N worker processes share M elements.
    #[command(after_help = "Example:\n  cloudmux demo --elements 100 --workers 8 --sleep-ms 10-50")]
    Demo {
        /// Number of elements.
        #[arg(long, default_value_t = 20)]
        elements: usize,
        /// Number of worker processes.
        #[arg(long, default_value_t = 5)]
        workers: usize,
        /// Where to create the data (default: a new temporary folder).
        #[arg(long)]
        root: Option<String>,
        /// Work per element in milliseconds: `MIN-MAX` (random) or `N`.
        #[arg(long, default_value = "100-200")]
        sleep_ms: SleepRange,
    },
    /// Create a dataset; prints its URL.
    #[command(
        long_about = "Create a dataset; prints its URL. Elements come as JSON Lines (one JSON \
value per line), one JSON array, or a range of integers. Numbers are kept exactly or refused \
with their line (see the README).",
        after_help = "Examples:\n  seq 0 99 | cloudmux new s3://bucket/jobs --tag sweep\n  \
cloudmux new ./data --from params.jsonl\n  cloudmux new gs://bucket/jobs --range 0..10000"
    )]
    New {
        /// Where to create it: a directory, file://, mem://, s3://, gs:// or az:// URL.
        path: String,
        /// A tag appended to the dataset folder's name.
        #[arg(long)]
        tag: Option<String>,
        /// Read elements from this file, or `-` for standard input.
        #[arg(long, default_value = "-", conflicts_with = "range")]
        from: String,
        /// The integers A up to B (excluded), e.g. `--range 0..1000` (or `A..=B`).
        #[arg(long, value_parser = input::parse_range)]
        range: Option<(i64, i64)>,
    },
    /// Start a new read session on a dataset; prints its mux id.
    #[command(
        long_about = "Start a new read session on a dataset; prints its mux id.\n\n\
A default session hands each element out exactly once: a worker that dies holding one \
loses it. A leased session (--lease) is crash-safe: each element is held under a lease \
renewed in the background, acknowledged when its command succeeded, and handed out again \
when its holder fails it or stops renewing, up to --max-attempts.\n\n\
The first session below a folder checks that the store honours conditional writes (as \
`cloudmux doctor` does, a dozen requests) and caches a pass in \
<folder>/.cloudmux-store-check.json; --no-check skips it.",
        after_help = "Examples:\n  id=$(cloudmux session \"$ds\")\n  \
id=$(cloudmux session \"$ds\" --lease 60 --max-attempts 3 --max-failed 100)"
    )]
    Session {
        /// The dataset folder's URL (as printed by `new`).
        dataset: String,
        /// A leased session: the lease in seconds (0.1 to 604800).
        #[arg(long, value_name = "SECONDS", value_parser = parse_lease)]
        lease: Option<Duration>,
        /// Leased sessions: failed attempts (reported failures and expired
        /// leases) after which an element is failed for good (default 3).
        #[arg(long, value_name = "N", requires = "lease", value_parser = clap::value_parser!(u32).range(1..))]
        max_attempts: Option<u32>,
        /// Leased sessions: stop handing out elements once this many have failed.
        #[arg(long, value_name = "N", requires = "lease", value_parser = clap::value_parser!(u64).range(1..))]
        max_failed: Option<u64>,
        /// Skip the check that the store honours conditional writes.
        #[arg(long)]
        no_check: bool,
    },
    /// Join a session as a worker: run a command once per element, or print each.
    #[command(
        long_about = "Join a session as a worker. With a command after `--`, run it once per \
element this worker obtains; without one, print each element (one JSON value per line) when \
it is obtained.\n\n\
The command gets the environment CLOUDMUX_ELEMENT (the element as JSON), CLOUDMUX_INDEX, \
CLOUDMUX_ATTEMPT, CLOUDMUX_MUX_ID and CLOUDMUX_WORKER_ID; in its arguments `{}` is replaced by \
the element (a string as itself, anything else as compact JSON). It runs without a shell (use \
`sh -c '...'` for one), in a process group of its own, with standard input from /dev/null; \
its standard output and error pass through untouched, and cloudmux's own messages go to \
standard error.\n\n\
In a leased session an element is acknowledged once its command exits 0; a failure is a \
failed attempt, retried (by any worker) up to the session's --max-attempts; an exit status \
given to --no-retry-exit fails it for good at once. In a default session a failure is \
recorded in the session (`stat` lists it) and the work goes on.\n\n\
Values JSON lacks are tagged: binary (Python bytes) as {\"$bytes\": \"<base64>\"}, a \
MessagePack extension (a pickled Python object is type 80) as {\"$ext\": T, \"$bytes\": \"<base64>\"}, \
a map key that is not a string as its JSON text.\n\n\
SIGINT or SIGTERM: no new elements are taken, the signal is forwarded to the running \
commands, and cloudmux waits for them; in a leased session their elements are released at \
once for other workers (a second signal kills the commands). A worker in a leased session \
that has nothing left to take stays until every element is completed, taking over elements \
whose lease expires.",
        after_help = format!("Examples:\n  cloudmux work \"$id\" -- ./process --input {{}}\n  \
cloudmux work \"$id\" --jobs 4 --timeout-per-element 600 --no-retry-exit 3 -- sh -c 'run \"$CLOUDMUX_ELEMENT\"'\n  \
cloudmux work \"$id\" --joblog jobs.tsv -- python step.py {{}}\n\n{EXIT_STATUSES}")
    )]
    Work {
        /// The mux id (or the environment variable CLOUDMUX_MUX_ID).
        #[arg(env = "CLOUDMUX_MUX_ID")]
        mux_id: String,
        /// Worker id (default: host/pid/thread, plus the batch task index).
        #[arg(long)]
        worker_id: Option<String>,
        /// Run up to K elements at once in this process.
        #[arg(short, long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
        jobs: u16,
        /// Kill a command that runs longer than this many seconds (a failed attempt).
        #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, requires = "command")]
        timeout_per_element: Option<Duration>,
        /// An exit status meaning "this element can never succeed": fail it for
        /// good at once (repeatable).
        #[arg(long, value_name = "CODE", requires = "command", value_parser = clap::value_parser!(i32).range(0..=255))]
        no_retry_exit: Vec<i32>,
        /// Append one tab-separated line per run to FILE (GNU parallel's
        /// joblog columns, then Index and Attempt).
        #[arg(long, value_name = "FILE", requires = "command")]
        joblog: Option<PathBuf>,
        /// This worker is number I of a fleet of N (`I/N`, I from 0): it
        /// starts at element I*E/N, so workers meet only where their slices
        /// end (fewer lost races and listings). A hint: any mix of values
        /// still gives each element to one worker. Default: from Cloud Run's
        /// CLOUD_RUN_TASK_INDEX and CLOUD_RUN_TASK_COUNT, or a task index
        /// (AWS_BATCH_JOB_ARRAY_INDEX, JOB_COMPLETION_INDEX) with
        /// CLOUDMUX_SHARD_COUNT=N; else a random start.
        #[arg(long, value_name = "I/N", env = "CLOUDMUX_SHARD", value_parser = cloudmux::util::parse_shard)]
        shard: Option<(u64, u64)>,
        /// Timeout per storage request, in seconds (up to one day; default 60).
        #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
        timeout: Option<Duration>,
        /// Without a command: simulated work per element in milliseconds, `MIN-MAX` or `N`.
        #[arg(long, default_value = "0", conflicts_with = "command")]
        sleep_ms: SleepRange,
        /// Without a command: `json` (one element per line, printed when
        /// obtained) or `demo` (`<element> done in <worker>`, after the work).
        #[arg(long, default_value = "json", conflicts_with = "command")]
        format: String,
        /// The command to run for each element, after `--`.
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Show a session's progress, once or live (--watch).
    #[command(
        long_about = "Show a session's progress: handed out, completed, in progress, failed \
(with the reasons of failed elements), per worker.\n\n\
--watch refreshes every --interval seconds until the session is done: a progress bar with a \
per-worker table on a terminal, one plain line per refresh otherwise, one JSON object per \
refresh with --json. A refresh lists names and reads only the worker summaries that changed: \
about ceil(N/1000) + ceil(C/1000) + ceil(F/1000) + 1 list requests (N handed out, C \
completed, F failed) plus one read per worker whose summary changed (each worker rewrites it \
at most every 5 s), plus, at the end of a leased session, up to 64 claim reads for elements \
whose completion marker lags (each read once); for 10,000 elements and 50 workers, at most 22 \
lists and 50 reads a refresh, and 64 reads once at the end. It never reads every claim. Each \
JSON object reports its `requests`.",
        after_help = "Examples:\n  cloudmux stat \"$id\"\n  cloudmux stat \"$id\" --json | jq .failed_elements\n  \
cloudmux stat \"$id\" --watch --interval 5"
    )]
    Stat {
        /// The mux id (or CLOUDMUX_MUX_ID).
        #[arg(env = "CLOUDMUX_MUX_ID")]
        mux_id: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Read every claim for exact per-worker counts (one request each).
        #[arg(long, conflicts_with = "watch")]
        exact: bool,
        /// Refresh until the session is done.
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes of --watch.
        #[arg(long, value_name = "SECONDS", default_value = "2", value_parser = parse_seconds, requires = "watch")]
        interval: Duration,
    },
    /// Exit 0 when the session is done, 1 otherwise.
    #[command(
        long_about = "Exit 0 when the session is done, 1 otherwise: in a default session when \
every element was handed out, in a leased session when every element is completed or failed."
    )]
    Done {
        /// The mux id (or CLOUDMUX_MUX_ID).
        #[arg(env = "CLOUDMUX_MUX_ID")]
        mux_id: String,
    },
    /// Make a leased session's failed elements available again.
    #[command(
        long_about = "Make a leased session's failed elements available again, each with a new \
attempt budget (earlier attempts are kept for the record); prints how many. Workers still \
running pick them up; otherwise start workers again. Default sessions hand each element out \
once and cannot retry: use a leased session for that.",
        after_help = "Example:\n  cloudmux retry-failed \"$id\" && cloudmux work \"$id\" -- ./process {}"
    )]
    RetryFailed {
        /// The mux id (or CLOUDMUX_MUX_ID).
        #[arg(env = "CLOUDMUX_MUX_ID")]
        mux_id: String,
    },
    /// Show one element: its value, who holds it, its attempts.
    #[command(after_help = "Example:\n  cloudmux inspect \"$id\" 17 --json")]
    Inspect {
        /// The mux id.
        mux_id: String,
        /// The element's index.
        index: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a dataset and all its sessions.
    #[command(
        long_about = "Remove a dataset and all its sessions. Refuses while a session is still \
running unless --force; an interrupted destroy can be run again."
    )]
    Destroy {
        /// The dataset folder's URL (as printed by `new`).
        dataset: String,
        /// Destroy even while sessions run: their workers stop with an error
        /// (destroy waits about 12 s for them to notice).
        #[arg(long)]
        force: bool,
    },
    /// Run a command while holding a path's lock (flock(1) for object storage).
    #[command(
        long_about = "Run a command while holding the lock on a path (the object <path>.lock), \
renewing it in the background; exit with the command's status. The command gets \
CLOUDMUX_FENCING_TOKEN: a number larger than every earlier holder's, to pass to whatever it \
writes so that writes of a holder that lost the lock can be refused. The lock is released when \
the command exits and on SIGINT/SIGTERM (forwarded to the command first).\n\n\
A lock that cannot be had within --timeout gives one line naming the holder, since when and \
until when, and exit status 75. If the lock is lost while the command runs (taken over after \
renewals failed for a whole TTL, or forced free), the command gets SIGTERM (SIGKILL 5 s later) \
and the exit status is 76.",
        after_help = "Examples:\n  cloudmux lock s3://bucket/state/db -- ./migrate.sh\n  \
cloudmux lock gs://bucket/counter --timeout 30 --ttl 60 -- sh -c 'update --token \"$CLOUDMUX_FENCING_TOKEN\"'"
    )]
    Lock {
        /// The path to lock (any URL; the lock object is <path>.lock).
        path: String,
        /// Give up after this many seconds (0: one attempt; default: wait as long as it takes).
        #[arg(long, value_name = "SECONDS", value_parser = parse_wait)]
        timeout: Option<Duration>,
        /// Seconds a holder keeps the lock without renewing (renewals come every third).
        #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_ttl)]
        ttl: Duration,
        /// The command to run, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Show who holds a path's lock: holder, acquired, expires, token.
    #[command(after_help = "Example:\n  cloudmux lock-info s3://bucket/state/db --json")]
    LockInfo {
        /// The locked path.
        path: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Free a path's lock, only if it is still held with this token.
    #[command(
        long_about = "Free a path's lock only if it is still held with this fencing token (for a \
holder known to be dead: read the token with lock-info). A lock held with another token, or \
already free, is left as it is (exit status 1).",
        after_help = "Example:\n  cloudmux force-unlock s3://bucket/state/db --token 7"
    )]
    ForceUnlock {
        /// The locked path.
        path: String,
        /// The fencing token of the acquisition to free.
        #[arg(long)]
        token: u64,
    },
    /// Check that a store honours conditional writes and ordered listings.
    #[command(
        long_about = "Check, with about a dozen requests under a random prefix that is removed \
afterwards, that the store refuses a second create of one key (create-if-absent) and a write \
from a stale version (compare-and-swap), lists keys in order page by page, and report the clock \
skew between this machine and the storage's timestamps. Several S3-compatible stores silently \
ignore conditional headers, which turns every claim and lock into none: doctor says so and \
exits 1.",
        after_help = "Examples:\n  cloudmux doctor s3://bucket/jobs\n  AWS_ENDPOINT_URL=http://127.0.0.1:9000 cloudmux doctor s3://bucket"
    )]
    Doctor {
        /// Where to check (a folder the checks may write below).
        url: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  cloudmux completions bash > ~/.local/share/bash-completion/completions/cloudmux\n  \
cloudmux completions zsh > ~/.zfunc/_cloudmux\n  cloudmux completions fish > ~/.config/fish/completions/cloudmux.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// A range of milliseconds, `MIN-MAX` or `N`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SleepRange(u64, u64);

impl std::str::FromStr for SleepRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |x: &str| {
            x.trim()
                .parse::<u64>()
                .ok()
                .filter(|&n| n <= 3_600_000)
                .ok_or_else(|| format!("'{s}' is not N or MIN-MAX milliseconds (up to one hour)"))
        };
        match s.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse(a)?, parse(b)?);
                if a > b {
                    return Err(format!("'{s}': MIN is larger than MAX"));
                }
                Ok(SleepRange(a, b))
            }
            None => {
                let n = parse(s)?;
                Ok(SleepRange(n, n))
            }
        }
    }
}

/// Seconds in `(0, max]`.
fn seconds_up_to(s: &str, max: f64, zero_ok: bool) -> Result<Duration, String> {
    let t: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    let low_ok = if zero_ok { t >= 0.0 } else { t > 0.0 };
    if !(low_ok && t <= max) {
        return Err(format!(
            "'{s}' is out of range ({} 0, at most {max} seconds)",
            if zero_ok { "at least" } else { "more than" }
        ));
    }
    Duration::try_from_secs_f64(t).map_err(|e| format!("'{s}': {e}"))
}

/// Seconds, positive and at most one day.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    seconds_up_to(s, 86_400.0, false)
}

/// A lease: 0.1 s to 7 days.
fn parse_lease(s: &str) -> Result<Duration, String> {
    let d = seconds_up_to(s, 7.0 * 86_400.0, false)?;
    if d < Duration::from_millis(100) {
        return Err(format!("'{s}': a lease is at least 0.1 seconds"));
    }
    Ok(d)
}

/// A lock's wait: 0 (one attempt) to 7 days.
fn parse_wait(s: &str) -> Result<Duration, String> {
    seconds_up_to(s, 7.0 * 86_400.0, true)
}

/// A lock's TTL: 0.1 s to one day.
fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = seconds_up_to(s, 86_400.0, false)?;
    if d < Duration::from_millis(100) {
        return Err(format!("'{s}': a TTL is at least 0.1 seconds"));
    }
    Ok(d)
}

impl std::fmt::Display for SleepRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

impl SleepRange {
    fn draw(&self) -> Duration {
        Duration::from_millis(fastrand::u64(self.0..=self.1))
    }
}

/// The log filter: RUST_LOG, else `-v`, else `--log`.
fn log_filter(cli: &Cli) -> tracing_subscriber::EnvFilter {
    if let Ok(f) = tracing_subscriber::EnvFilter::try_from_default_env() {
        return f;
    }
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let ours = [
        "cloudmux",
        "cloudmux_core",
        "cloudmux_mux",
        "cloudmux_s3",
        "cloudmux_gcs",
        "cloudmux_azure",
    ];
    let spec = std::iter::once(cli.log.clone())
        .chain(ours.iter().map(|c| format!("{c}={level}")))
        .collect::<Vec<_>>()
        .join(",");
    tracing_subscriber::EnvFilter::new(spec)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter(&cli))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    // A panic is a bug; still, users get one line, not a trace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("cloudmux: internal error: {info}");
    }));
    // One thread: a worker's requests, its commands' children and its
    // heartbeats are all waiting on I/O, and handing each tiny local-disk
    // operation between threads cost more than the operation (futex
    // wake-ups were most of a local worker's system time).
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cloudmux: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match rt.block_on(run(cli.cmd)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cloudmux: {}", one_line(&e));
            ExitCode::from(2)
        }
    };
    // Do not wait for background tasks (a feeder watching for leases).
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}

/// The error and its causes on one line, without repeats.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

async fn run(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Demo {
            elements,
            workers,
            root,
            sleep_ms,
        } => demo(elements, workers, root, sleep_ms).await,
        Cmd::New {
            path,
            tag,
            from,
            range,
        } => {
            reject_mux_id("new", &path)?;
            let root = AnyResolver.resolve(&path).await?;
            let src = match range {
                Some((a, b)) => input::Source::Range(a, b),
                None => input::Source::Reader(from),
            };
            let (bytes, count) = input::encode(&src)?;
            let mux = cloudmux::mux::Multiplexer::from_encoded(bytes, count, &root, tag.as_deref())
                .await?;
            println!("{}", mux.path());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Session {
            dataset,
            lease,
            max_attempts,
            max_failed,
            no_check,
        } => {
            reject_mux_id("session", &dataset)?;
            let mux = cloudmux::dataset(&dataset).await?;
            if !no_check {
                check_store(&mux).await?;
            }
            let opts = SessionOptions {
                lease,
                max_attempts,
                max_failed,
            };
            println!("{}", mux.create_read_session_with(opts).await?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Work {
            mux_id,
            worker_id,
            jobs,
            timeout_per_element,
            no_retry_exit,
            joblog,
            shard,
            timeout,
            sleep_ms,
            format,
            command,
        } => {
            let runner = if command.is_empty() {
                if format != "json" && format != "demo" {
                    bail!("unknown --format '{format}' (expected json or demo)");
                }
                work::Runner::Print {
                    sleep: sleep_ms,
                    demo: format == "demo",
                }
            } else {
                work::Runner::Command(command)
            };
            work::work(work::WorkArgs {
                mux_id,
                worker_id,
                request_timeout: timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
                jobs: usize::from(jobs),
                timeout_per_element,
                no_retry_exit,
                joblog,
                shard,
                runner,
            })
            .await
        }
        Cmd::Stat {
            mux_id,
            json,
            exact,
            watch,
            interval,
        } => {
            let (mux, id) = open_session(&mux_id).await?;
            if watch {
                stat::watch(&mux, &id, json, interval).await
            } else {
                stat::once(&mux, &id, json, exact).await
            }
        }
        Cmd::Done { mux_id } => {
            let (mux, id) = open_session(&mux_id).await?;
            let done = mux.done(&id).await?;
            println!("done: {done}");
            Ok(if done {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::RetryFailed { mux_id } => {
            let (mux, id) = open_session(&mux_id).await?;
            let n = mux.retry_failed(&id).await?;
            println!("{n} failed element(s) made available again");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Inspect {
            mux_id,
            index,
            json,
        } => inspect(&mux_id, index, json).await,
        Cmd::Destroy { dataset, force } => {
            reject_mux_id("destroy", &dataset)?;
            let root = AnyResolver.resolve(&dataset).await?;
            let opts = cloudmux::mux::DestroyOptions {
                force,
                ..Default::default()
            };
            let d = cloudmux::mux::Multiplexer::resume_destroy(&root, opts).await?;
            if d.running > 0 {
                eprintln!("cloudmux: stopped {} running session(s)", d.running);
            }
            println!("removed {} objects", d.objects);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Lock {
            path,
            timeout,
            ttl,
            command,
        } => {
            lockcmd::lock(lockcmd::LockArgs {
                path,
                timeout,
                ttl,
                command,
            })
            .await
        }
        Cmd::LockInfo { path, json } => lockcmd::lock_info(&path, json).await,
        Cmd::ForceUnlock { path, token } => lockcmd::force_unlock(&path, token).await,
        Cmd::Doctor { url, json } => {
            let root = AnyResolver.resolve(&url).await?;
            let report = doctor::run(&root).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                doctor::print(&report);
            }
            if report.ok() {
                return Ok(ExitCode::SUCCESS);
            }
            let f = report.failure().unwrap_or_default();
            eprintln!("cloudmux: {root} does not honour what cloudmux relies on: {f}");
            Ok(ExitCode::from(1))
        }
        Cmd::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "cloudmux", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The per-request timeout of `work` when none is given.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

async fn open_session(mux_id: &str) -> Result<(cloudmux::mux::Multiplexer, MuxId)> {
    let id: MuxId = mux_id.parse()?;
    let mux = cloudmux::dataset(id.dataset_url()).await?;
    Ok((mux, id))
}

/// Commands that take a dataset URL say so when given a mux id.
fn reject_mux_id(cmd: &str, arg: &str) -> Result<()> {
    if arg.trim_start().starts_with("cmx") && arg.contains(':') && arg.contains('@') {
        bail!("this is a mux id; {cmd} takes a dataset URL (the part after '@')");
    }
    Ok(())
}

/// `session`'s check of the store, once per folder (see [`doctor`]).
async fn check_store(mux: &cloudmux::mux::Multiplexer) -> Result<()> {
    let Some(parent) = mux.path().parent() else {
        return Ok(());
    };
    // Opened afresh from its URL: on the local backend, a path keeps below
    // itself the directories its writes leave empty (the probe's folder).
    let parent = AnyResolver.resolve(&parent.url()).await?;
    if doctor::cached(&parent).await? {
        return Ok(());
    }
    let report = doctor::run(&parent).await?;
    if let Some(f) = report.failure() {
        bail!(
            "{parent} does not honour conditional writes ({f}); `cloudmux doctor {parent}` shows \
             the checks; --no-check starts the session anyway"
        );
    }
    if let Err(e) = doctor::remember(&parent, &report).await {
        tracing::warn!(error = %e, "could not cache the store check");
    }
    Ok(())
}

/// `inspect`: one element, its claim and its attempts.
async fn inspect(mux_id: &str, index: usize, json: bool) -> Result<ExitCode> {
    use cloudmux::mux::layout::{claim_name, claim_width};
    let (mux, id) = open_session(mux_id).await?;
    if index >= mux.len() {
        bail!(
            "index {index} is beyond the dataset ({} elements)",
            mux.len()
        );
    }
    let session = mux.layout().session(id.session())?;
    if !session.doc()?.is_file().await? {
        bail!("no session '{}' in {}", id.session(), mux.path());
    }
    let name = claim_name(index, claim_width(mux.len()));
    let claim =
        cloudmux::cond::CondDoc::<cloudmux::mux::Claim>::new(session.claims()?.join(&name)?)
            .read()
            .await?;
    let value: Option<serde_json::Value> = {
        let bytes = mux
            .layout()
            .data(&mux.manifest().data)?
            .read_bytes()
            .await?;
        let el = cloudmux::mux::Elements::parse(bytes, Some(mux.len()))?;
        el.get::<element::Element>(index).ok().map(|e| e.0)
    };
    let failed_record = match session
        .failed()?
        .join(&name)?
        .read_json::<serde_json::Value>()
        .await
    {
        Ok(v) => Some(v),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    let v = serde_json::json!({
        "index": index,
        "element": value,
        "claimed": claim.is_some(),
        "attempt": claim.as_ref().map(|c| c.stamp.epoch),
        "worker": claim.as_ref().map(|c| c.body.worker.clone()),
        "state": claim.as_ref().and_then(|c| c.body.state),
        "history": claim.as_ref().map(|c| c.body.history.clone()).unwrap_or_default(),
        "earlier": claim.as_ref().map(|c| c.body.earlier.clone()).unwrap_or_default(),
        "failed": failed_record,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("element   {index}: {}", v["element"]);
    match &claim {
        None => println!("claim     none (not handed out yet)"),
        Some(c) => {
            let state = c
                .body
                .state
                .map(|s| {
                    serde_json::to_value(s)
                        .unwrap_or_default()
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
                .unwrap_or_else(|| "handed out".into());
            println!("state     {state}");
            println!("worker    {}", c.body.worker);
            println!("attempt   {}", c.stamp.epoch);
            for a in c.body.earlier.iter().chain(&c.body.history) {
                println!(
                    "  attempt {} by {}: {}{}",
                    a.attempt,
                    a.worker,
                    serde_json::to_value(a.outcome)
                        .unwrap_or_default()
                        .as_str()
                        .unwrap_or("?"),
                    a.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
        }
    }
    if let Some(f) = failed_record {
        println!("failed    {}", f["history"]);
    }
    Ok(ExitCode::SUCCESS)
}

async fn demo(
    elements: usize,
    workers: usize,
    root: Option<String>,
    sleep: SleepRange,
) -> Result<ExitCode> {
    if elements == 0 || workers == 0 {
        bail!("--elements and --workers must be at least 1");
    }
    let tmp;
    let root_url = match root {
        Some(r) => r,
        None => {
            tmp = tempfile::Builder::new()
                .prefix("cloudmux-demo-")
                .tempdir()?;
            tmp.path().display().to_string()
        }
    };
    let root = AnyResolver.resolve(&root_url).await?;
    let end_to_end = Stopwatch::system();
    let mux = cloudmux::mux::Multiplexer::new(0..elements as u64, &root, Some("demo")).await?;
    let id = mux.create_read_session().await?;
    println!("dataset: {}", mux.path());
    println!("mux id: {id}");
    let exe = std::env::current_exe().context("cannot find the cloudmux executable")?;
    let mut children = Vec::new();
    for _ in 0..workers {
        let child = tokio::process::Command::new(&exe)
            .arg("work")
            .arg(id.to_string())
            .arg("--format")
            .arg("demo")
            .arg("--sleep-ms")
            .arg(sleep.to_string())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start a worker process")?;
        children.push(child);
    }
    let mut failed = 0;
    for mut c in children {
        if !c.wait().await?.success() {
            failed += 1;
        }
    }
    let done = mux.done(&id).await?;
    println!("done: {done}");
    let st = mux.stat(&id).await?;
    mux.destroy().await?;
    let total = end_to_end.elapsed().as_secs_f64();
    // Claiming: from the first claim to the last, by the claims' own times;
    // end to end: new, session, the worker processes, done, stat, destroy.
    let claiming = match st.elapsed_s {
        Some(s) if s > 0.0 => format!(
            "{:.0} elements/s claiming ({s:.2} s)",
            st.claimed as f64 / s
        ),
        _ => "claiming too fast to time".to_string(),
    };
    eprintln!(
        "{} elements, {} workers: {claiming}; {:.0} elements/s end to end ({total:.2} s)",
        st.claimed,
        st.workers.len(),
        st.claimed as f64 / total.max(1e-9),
    );
    if failed > 0 {
        bail!("{failed} worker process(es) failed");
    }
    Ok(if done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
