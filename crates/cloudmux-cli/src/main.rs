//! `cloudmux`: the command-line face of the Multiplexer.
//!
//! Errors print one line on stderr and exit with status 2 (`done` exits 1
//! when the session is not finished). No panic trace reaches a user.

use std::io::{BufRead, Write};
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
    /// Create a dataset from JSON Lines (one JSON value per line); prints its URL.
    New {
        /// Where to create it: a directory, file://, mem://, s3://, gs:// or az:// URL.
        path: String,
        /// A tag appended to the dataset folder's name.
        #[arg(long)]
        tag: Option<String>,
        /// Read elements from this file, or `-` for standard input.
        #[arg(long, default_value = "-")]
        from: String,
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
        /// Timeout per storage request, in seconds.
        #[arg(long)]
        timeout: Option<f64>,
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
    /// Remove a dataset and all its sessions.
    Destroy {
        /// The dataset folder's URL.
        dataset: String,
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
                .map_err(|_| format!("'{s}' is not N or MIN-MAX milliseconds"))
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
        Cmd::New { path, tag, from } => {
            let root = AnyResolver.resolve(&path).await?;
            let items = read_json_lines(&from)?;
            let mux = cloudmux::mux::Multiplexer::new(items, &root, tag.as_deref()).await?;
            println!("{}", mux.path());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Session { dataset } => {
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
        Cmd::Destroy { dataset } => {
            let mux = cloudmux::dataset(&dataset).await?;
            let n = mux.destroy().await?;
            println!("removed {n} objects");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn open_session(mux_id: &str) -> Result<(cloudmux::mux::Multiplexer, MuxId)> {
    let id: MuxId = mux_id.parse()?;
    let mux = cloudmux::dataset(id.dataset_url()).await?;
    Ok((mux, id))
}

fn read_json_lines(from: &str) -> Result<Vec<serde_json::Value>> {
    let reader: Box<dyn BufRead> = if from == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(from).with_context(|| format!("cannot read {from}"))?,
        ))
    };
    let mut items = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {from}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{from}: line {} is not JSON", n + 1))?;
        items.push(v);
    }
    if items.is_empty() {
        bail!("{from}: no elements (expected one JSON value per line)");
    }
    Ok(items)
}

async fn work(
    mux_id: &str,
    worker_id: Option<String>,
    timeout: Option<f64>,
    sleep: SleepRange,
    format: &str,
) -> Result<ExitCode> {
    if format != "json" && format != "demo" {
        bail!("unknown --format '{format}' (expected json or demo)");
    }
    let mut opts = WorkerOptions {
        worker_id,
        ..WorkerOptions::default()
    };
    if let Some(t) = timeout {
        if !(t > 0.0 && t.is_finite()) {
            bail!("--timeout must be a positive number of seconds");
        }
        opts.timeout = Some(Duration::from_secs_f64(t));
    }
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
            Err(e) if e.is_retryable() && failures < 10 => {
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
