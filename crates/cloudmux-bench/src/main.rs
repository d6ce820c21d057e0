//! `cloudmux-bench`: measures the Multiplexer, its baseline, the lock and the
//! local backend, and prints a table (or JSON with `--json`).
//!
//! # Layout
//!
//! | module | role |
//! |---|---|
//! | [`handout`] | scenario 1: N async workers on the in-memory store with injected latency |
//! | [`baseline`] | scenario 2: the original design (a `next` counter under the path lock) |
//! | [`procs`] | scenarios 3 and 5: worker OS processes on the local filesystem, peak memory |
//! | [`lockbench`] | scenario 4: lock latency and hand-offs between contenders |
//! | [`ops`] | scenario 7: `stat`, `done`, `stat --exact`, `destroy` and one worker's claims on the local disk |
//! | [`sim`] | scenario 6: fleets of up to 1,024 workers in virtual time, against the providers' rate limits |
//! | [`machine`] | the machine the numbers were measured on |
//! | [`report`] | percentiles and plain-text tables |
//!
//! The binary re-executes itself in a hidden `__worker` mode for the
//! scenarios that need separate processes.

mod baseline;
mod handout;
mod lockbench;
mod machine;
mod ops;
mod procs;
mod report;
mod sim;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "cloudmux-bench",
    about = "Benchmarks of the cloudmux Multiplexer: hand-out scaling against a lock-based baseline, \
             local worker processes, the lock, and a worker's peak memory"
)]
struct Cli {
    /// The hidden worker mode (the bench re-executes itself).
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    json: bool,
    /// A small, fast run of every scenario (no targets asserted).
    #[arg(long)]
    smoke: bool,
    /// Run only this scenario.
    #[arg(long, value_enum)]
    scenario: Option<Scenario>,
    /// Mean injected latency per request, in milliseconds.
    #[arg(long, default_value_t = 20.0)]
    latency_ms: f64,
    /// Uniform jitter (± ms) around the latency; default a quarter of it.
    #[arg(long)]
    jitter_ms: Option<f64>,
    /// Elements of the hand-out scenario (the largest E).
    #[arg(long, default_value_t = 10_000)]
    elements: usize,
    /// Elements per worker at most, so small N stays quick: E = min(elements, N * this).
    #[arg(long, default_value_t = 300)]
    per_worker: usize,
    /// Worker counts of the hand-out sweep.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64,256")]
    workers: Vec<usize>,
    /// Skip the baseline in the hand-out scenario.
    #[arg(long)]
    no_baseline: bool,
    /// Elements the baseline hands out at each N (it manages a few per second).
    #[arg(long, default_value_t = 100)]
    baseline_elements: usize,
    /// Longest time the baseline runs at each N, in seconds.
    #[arg(long, default_value_t = 20.0)]
    baseline_seconds: f64,
    /// Worker processes of the local-filesystem scenario.
    #[arg(long, default_value_t = 16)]
    processes: usize,
    /// Elements of the local-filesystem scenario.
    #[arg(long, default_value_t = 10_000)]
    local_elements: usize,
    /// Elements of the memory scenario (about 100 bytes each).
    #[arg(long, default_value_t = 100_000)]
    memory_elements: usize,
    /// Uncontended lock rounds on the memory backend (with latency).
    #[arg(long, default_value_t = 30)]
    lock_rounds: usize,
    /// Uncontended lock rounds on the local filesystem.
    #[arg(long, default_value_t = 500)]
    lock_local_rounds: usize,
    /// Contenders of the lock hand-off measurement.
    #[arg(long, default_value_t = 8)]
    lock_contenders: usize,
    /// Duration of the lock hand-off measurement, in seconds.
    #[arg(long, default_value_t = 10.0)]
    lock_seconds: f64,
    /// Print the hand-out's progress every 50 ms to stderr (diagnostics).
    #[arg(long)]
    timeline: bool,
    /// Seed of the injected latency and of the workers' random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The sim scenario's providers.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "s3,gcs,azure"
    )]
    providers: Vec<sim::Provider>,
    /// The sim scenario's starts: `random` (any fleet) and `shard` (worker w
    /// of N starts at w E / N, as an array job can).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "random,shard"
    )]
    starts: Vec<sim::Start>,
    /// The sim scenario: send a second copy of any read (get, head, list)
    /// still unanswered after this many milliseconds (the Hedge layer).
    #[arg(long, value_name = "MS")]
    hedge_ms: Option<u64>,
    /// The sim scenario: leased sessions (60 s lease) instead of default ones.
    #[arg(long)]
    leased: bool,
    /// The sim scenario's worker counts in a full run (`--scenario sim` takes
    /// `--workers`).
    #[arg(long, value_delimiter = ',', default_value = "16,64,256,1024")]
    sim_workers: Vec<usize>,
    /// The sim scenario: run this many seeds (from --seed on) and add a
    /// table of each fleet's mean and spread over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100))]
    sim_seeds: u64,
    /// The sim scenario: elements per worker (E = this x N).
    #[arg(long, default_value_t = 100)]
    sim_per_worker: usize,
    /// The ops scenario's session sizes.
    #[arg(long, value_delimiter = ',', default_value = "20000,200000")]
    ops_sizes: Vec<usize>,
}

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Hand-out scaling on the in-memory store, with the baseline side by side.
    Handout,
    /// 16 worker processes on the local filesystem.
    Localfs,
    /// Lock latency and hand-offs.
    Lock,
    /// Peak memory of one worker process.
    Memory,
    /// Fleets in virtual time against the providers' rate limits.
    Sim,
    /// The coordinator's operations and one worker's claims on the local disk.
    Ops,
}

/// Hidden subcommands.
#[derive(Debug, Subcommand)]
enum Cmd {
    /// Join a session as one worker process and print a JSON result line.
    #[command(name = "__worker", hide = true)]
    Worker(procs::WorkerArgs),
}

/// Everything one run measured.
#[derive(Debug, Serialize)]
struct Run {
    /// The command line that produced the run.
    command: String,
    /// True for `--smoke` runs (small sizes, no targets).
    smoke: bool,
    /// The machine.
    machine: machine::Machine,
    /// Scenario 1 and 2.
    #[serde(skip_serializing_if = "Option::is_none")]
    handout: Option<handout::HandoutReport>,
    /// Scenario 3.
    #[serde(skip_serializing_if = "Option::is_none")]
    localfs: Option<procs::LocalReport>,
    /// Scenario 4.
    #[serde(skip_serializing_if = "Option::is_none")]
    lock: Option<lockbench::LockReport>,
    /// Scenario 5.
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<procs::MemoryReport>,
    /// Scenario 6.
    #[serde(skip_serializing_if = "Option::is_none")]
    sim: Option<sim::SimReport>,
    /// Scenario 7.
    #[serde(skip_serializing_if = "Option::is_none")]
    ops: Option<ops::OpsReport>,
}

fn main() -> Result<()> {
    let mut cli = Cli::parse();
    if let Some(Cmd::Worker(args)) = &cli.command {
        return procs::worker_main(args);
    }
    if cli.smoke {
        shrink_for_smoke(&mut cli);
    }
    if cli.latency_ms < 0.0 || !cli.latency_ms.is_finite() {
        bail!("--latency-ms must be a non-negative number");
    }
    if cli.workers.is_empty() || cli.workers.contains(&0) {
        bail!("--workers needs positive worker counts");
    }
    let latency = Duration::from_secs_f64(cli.latency_ms / 1000.0);
    let jitter = Duration::from_secs_f64(cli.jitter_ms.unwrap_or(cli.latency_ms / 4.0) / 1000.0);
    if jitter > latency {
        bail!("--jitter-ms must not exceed --latency-ms");
    }
    let wants = |s: Scenario| cli.scenario.is_none_or(|x| x == s);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut run = Run {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        smoke: cli.smoke,
        machine: machine::Machine::detect(),
        handout: None,
        localfs: None,
        lock: None,
        memory: None,
        sim: None,
        ops: None,
    };
    if !cli.json {
        println!("{}", run.machine.render());
        println!("command: {}\n", run.command);
    }
    if wants(Scenario::Handout) {
        let p = handout::Params {
            latency,
            jitter,
            elements: cli.elements,
            per_worker: cli.per_worker,
            workers: cli.workers.clone(),
            baseline: !cli.no_baseline,
            baseline_elements: cli.baseline_elements,
            baseline_budget: Duration::from_secs_f64(cli.baseline_seconds),
            seed: cli.seed,
            timeline: cli.timeline,
        };
        let r = rt.block_on(handout::run(&p, !cli.json))?;
        if !cli.json {
            println!("{}", r.render());
        }
        run.handout = Some(r);
    }
    if wants(Scenario::Localfs) {
        let r = rt.block_on(procs::local_processes(cli.processes, cli.local_elements))?;
        if !cli.json {
            println!("{}", r.render());
        }
        run.localfs = Some(r);
    }
    if wants(Scenario::Lock) {
        let p = lockbench::Params {
            latency,
            jitter,
            rounds: cli.lock_rounds,
            local_rounds: cli.lock_local_rounds,
            contenders: cli.lock_contenders,
            duration: Duration::from_secs_f64(cli.lock_seconds),
            seed: cli.seed,
        };
        let r = rt.block_on(lockbench::run(&p))?;
        if !cli.json {
            println!("{}", r.render());
        }
        run.lock = Some(r);
    }
    if wants(Scenario::Memory) {
        let r = rt.block_on(procs::memory(cli.memory_elements))?;
        if !cli.json {
            println!("{}", r.render());
        }
        run.memory = Some(r);
    }
    if wants(Scenario::Ops) {
        let r = rt.block_on(ops::run(&cli.ops_sizes))?;
        if !cli.json {
            println!("{}", r.render());
        }
        run.ops = Some(r);
    }
    if wants(Scenario::Sim) {
        let p = sim::SimParams {
            workers: if cli.scenario == Some(Scenario::Sim) || cli.smoke {
                cli.workers.clone()
            } else {
                cli.sim_workers.clone()
            },
            per_worker: cli.sim_per_worker,
            providers: cli.providers.clone(),
            starts: cli.starts.clone(),
            hedge: cli.hedge_ms.map(Duration::from_millis),
            leased: cli.leased,
            seed: cli.seed,
            seeds: cli.sim_seeds,
        };
        let r = sim::run(&p, !cli.json)?;
        if !cli.json {
            println!("{}", r.render());
        }
        run.sim = Some(r);
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    }
    Ok(())
}

/// `--smoke`: every scenario, small and quick.
fn shrink_for_smoke(cli: &mut Cli) {
    cli.latency_ms = cli.latency_ms.min(5.0);
    cli.jitter_ms = cli.jitter_ms.map(|j| j.min(cli.latency_ms));
    cli.elements = cli.elements.min(400);
    cli.per_worker = cli.per_worker.min(50);
    cli.workers = vec![1, 4, 16];
    cli.baseline_elements = cli.baseline_elements.min(10);
    cli.baseline_seconds = cli.baseline_seconds.min(2.0);
    cli.processes = cli.processes.min(4);
    cli.local_elements = cli.local_elements.min(1_000);
    cli.memory_elements = cli.memory_elements.min(5_000);
    cli.lock_rounds = cli.lock_rounds.min(5);
    cli.lock_local_rounds = cli.lock_local_rounds.min(20);
    cli.lock_contenders = cli.lock_contenders.min(4);
    cli.lock_seconds = cli.lock_seconds.min(0.5);
    cli.ops_sizes = vec![2_000];
    cli.providers = vec![sim::Provider::S3];
}
