//! `cloudmux`: the command-line face of the Multiplexer.
//!
//! Errors print one line on stderr and exit with status 2 (`done` exits 1
//! when the session is not finished). No panic trace reaches a user.

mod input;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use cloudmux::clock::Stopwatch;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use cloudmux::mux::{MuxId, SessionStat, WorkerOptions};
use cloudmux::{AnyResolver, Resolver};

#[derive(Parser, Debug)]
#[command(
    name = "cloudmux",
    version,
    about = "Share out work among many workers through object storage, with no server"
)]
struct Cli {
    /// Log level (error, warn, info, debug, trace); also RUST_LOG.
    #[arg(long, global = true, env = "CLOUDMUX_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the classic example: N worker processes share M elements.
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
    /// Create a dataset; prints its URL. Elements come as JSON Lines (one
    /// JSON value per line), one JSON array, or a range of integers. Numbers
    /// are kept exactly or refused with their line (see the README).
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
    Session {
        /// The dataset folder's URL (as printed by `new`).
        dataset: String,
    },
    /// Join a session as a worker and print each element obtained.
    Work {
        /// The mux id.
        mux_id: String,
        /// Worker id (default: host/pid/thread, plus the batch task index).
        #[arg(long)]
        worker_id: Option<String>,
        /// Timeout per storage request, in seconds (up to one day).
        #[arg(long, value_parser = parse_seconds)]
        timeout: Option<Duration>,
        /// Simulated work per element in milliseconds: `MIN-MAX` or `N`.
        #[arg(long, default_value = "0")]
        sleep_ms: SleepRange,
        /// Output: `json` (one element per line) or `demo` (`<element> done in <worker>`).
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Show a session's progress.
    Stat {
        /// The mux id.
        mux_id: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Read every claim for exact per-worker counts (one request each).
        #[arg(long)]
        exact: bool,
    },
    /// Exit 0 when every element was handed out, 1 otherwise.
    Done {
        /// The mux id.
        mux_id: String,
    },
    /// Remove a dataset and all its sessions. Refuses while a session is
    /// still running unless `--force`; an interrupted destroy can be run again.
    Destroy {
        /// The dataset folder's URL (as printed by `new`).
        dataset: String,
        /// Destroy even while sessions run: their workers stop with an error
        /// (destroy waits about 12 s for them to notice).
        #[arg(long)]
        force: bool,
    },
}

/// A range of milliseconds, `MIN-MAX` or `N`.
#[derive(Debug, Clone, Copy)]
struct SleepRange(u64, u64);

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

/// Seconds, positive and at most one day.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let t: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(t > 0.0 && t <= 86_400.0) {
        return Err(format!(
            "'{s}' is out of range (more than 0, at most 86400 seconds)"
        ));
    }
    Duration::try_from_secs_f64(t).map_err(|e| format!("'{s}': {e}"))
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    // A panic is a bug; still, users get one line, not a trace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("cloudmux: internal error: {info}");
    }));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cloudmux: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli.cmd)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cloudmux: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
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
        Cmd::Session { dataset } => {
            reject_mux_id("session", &dataset)?;
            let mux = cloudmux::dataset(&dataset).await?;
            println!("{}", mux.create_read_session().await?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Work {
            mux_id,
            worker_id,
            timeout,
            sleep_ms,
            format,
        } => work(&mux_id, worker_id, timeout, sleep_ms, &format).await,
        Cmd::Stat {
            mux_id,
            json,
            exact,
        } => {
            let (mux, id) = open_session(&mux_id).await?;
            let st = if exact {
                mux.stat_exact(&id).await?
            } else {
                mux.stat(&id).await?
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                print_stat(&st);
            }
            Ok(ExitCode::SUCCESS)
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

async fn work(
    mux_id: &str,
    worker_id: Option<String>,
    timeout: Option<Duration>,
    sleep: SleepRange,
    format: &str,
) -> Result<ExitCode> {
    if format != "json" && format != "demo" {
        bail!("unknown --format '{format}' (expected json or demo)");
    }
    let opts = WorkerOptions {
        worker_id,
        timeout: Some(timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT)),
        ..WorkerOptions::default()
    };
    let mut worker = cloudmux::worker::<serde_json::Value>(mux_id, opts).await?;
    let me = worker.worker_id().to_string();
    let clock = cloudmux::clock::system();
    let stdout = std::io::stdout();
    let mut failures = 0;
    while let Some(r) = worker.next().await {
        let (_, v) = match r {
            Ok(x) => {
                failures = 0;
                x
            }
            Err(e) if (e.is_retryable() || e.is_outcome_unknown()) && failures < 10 => {
                // The worker settles the uncertain claim on the next call.
                failures += 1;
                tracing::warn!(error = %e, "storage error; continuing");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let d = sleep.draw();
        if !d.is_zero() {
            clock.sleep(d).await;
        }
        let mut out = stdout.lock();
        if format == "demo" {
            writeln!(out, "{v} done in {me}")?;
        } else {
            writeln!(out, "{v}")?;
        }
        out.flush()?;
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
    let mux = cloudmux::mux::Multiplexer::new(0..elements as u64, &root, Some("demo")).await?;
    let id = mux.create_read_session().await?;
    println!("dataset: {}", mux.path());
    println!("mux id: {id}");
    let exe = std::env::current_exe().context("cannot find the cloudmux executable")?;
    let started = Stopwatch::system();
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
    let elapsed = started.elapsed();
    let done = mux.done(&id).await?;
    println!("done: {done}");
    let st = mux.stat(&id).await?;
    eprintln!(
        "{} elements, {} workers, {:.2} s ({:.0} elements/s)",
        st.claimed,
        st.workers.len(),
        elapsed.as_secs_f64(),
        st.claimed as f64 / elapsed.as_secs_f64()
    );
    mux.destroy().await?;
    if failed > 0 {
        bail!("{failed} worker process(es) failed");
    }
    Ok(if done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_stat(st: &SessionStat) {
    println!("session   {}", st.session);
    println!(
        "claimed   {} / {}{}",
        st.claimed,
        st.total,
        if st.done { "  (done)" } else { "" }
    );
    if let Some(f) = &st.first_claim {
        println!("first     {f}");
    }
    if let Some(l) = &st.last_claim {
        println!("last      {l}");
    }
    if let Some(e) = st.elapsed_s
        && e > 0.0
    {
        println!("rate      {:.1} elements/s", st.claimed as f64 / e);
    }
    if !st.workers.is_empty() {
        println!();
        let w = st
            .workers
            .iter()
            .map(|w| w.worker.len())
            .max()
            .unwrap_or(6)
            .max(6);
        println!("{:<w$}  {:>8}  finished", "worker", "claimed");
        for x in &st.workers {
            println!(
                "{:<w$}  {:>8}  {}",
                x.worker,
                x.claimed,
                if x.finished { "yes" } else { "no" }
            );
        }
        if !st.exact {
            println!(
                "(per-worker counts from worker summaries, refreshed every few seconds; --exact reads every claim)"
            );
        }
    }
}
