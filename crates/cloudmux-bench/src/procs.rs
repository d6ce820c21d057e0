//! Scenarios with worker OS processes on the local filesystem: 3 (hand-out
//! rate of P processes) and 5 (peak memory of one worker). The bench binary
//! re-executes itself as `cloudmux-bench __worker`, which joins a session,
//! takes elements until none is left, and prints one JSON line.

use cloudmux_core::clock::Stopwatch;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use cloudmux_core::clock;
use cloudmux_core::{CoreResolver, UPath};
use cloudmux_mux::{Multiplexer, Worker, WorkerOptions, WorkerProgress};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::machine::peak_rss_kib;
use crate::report::{Table, rate};

/// Element types a worker process can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// Plain integers (scenario 3).
    U64,
    /// Records of about 100 bytes (scenario 5).
    Record,
}

/// Arguments of the hidden worker mode.
#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    /// The session to join.
    #[arg(long)]
    mux_id: String,
    /// The element type.
    #[arg(long, value_enum)]
    kind: Kind,
    /// This worker's id.
    #[arg(long)]
    worker_id: String,
    /// Print every index obtained (for the exactly-once check).
    #[arg(long)]
    indices: bool,
}

/// The element of the memory scenario: about 100 bytes as MessagePack.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Record {
    /// Its number.
    id: u64,
    /// Some text standing for a job's parameters.
    params: String,
}

impl Record {
    /// Record `i`, 99 to 101 bytes encoded.
    fn new(i: u64) -> Self {
        let mut params = format!(
            "lr={:.6};depth={};seed={i};tag=",
            1.0 / (i + 7) as f64,
            i % 13
        );
        while params.len() < 82 {
            params.push(char::from(b'a' + (params.len() as u8 % 26)));
        }
        Record { id: i, params }
    }
}

/// What a worker process prints (one JSON line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerLine {
    /// Worker id.
    worker: String,
    /// Elements obtained.
    count: u64,
    /// Indices obtained, if asked for.
    indices: Vec<usize>,
    /// Milliseconds from process start (main) to the worker being open.
    open_ms: f64,
    /// Unix microseconds just before the first `next()`.
    claim_start_us: u64,
    /// Unix microseconds when the last element was obtained (0: none).
    last_element_us: u64,
    /// Unix microseconds when the worker stopped.
    end_us: u64,
    /// Peak resident memory before opening, KiB.
    vmhwm_before_kib: u64,
    /// Peak resident memory at the end, KiB.
    vmhwm_kib: u64,
    /// The worker's counters.
    progress: WorkerProgress,
    /// A checksum of the decoded elements (keeps decoding honest).
    checksum: u64,
}

fn unix_us() -> u64 {
    clock::system()
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// The hidden worker mode.
pub(crate) fn worker_main(a: &WorkerArgs) -> Result<()> {
    let t = Stopwatch::system();
    let vmhwm_before_kib = peak_rss_kib().unwrap_or(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let line = rt.block_on(async {
        match a.kind {
            Kind::U64 => consume::<u64>(a, t, vmhwm_before_kib, |v| *v).await,
            Kind::Record => {
                consume::<Record>(a, t, vmhwm_before_kib, |r| r.id ^ r.params.len() as u64).await
            }
        }
    })?;
    println!("{}", serde_json::to_string(&line)?);
    Ok(())
}

async fn consume<T: DeserializeOwned>(
    a: &WorkerArgs,
    t: Stopwatch,
    vmhwm_before_kib: u64,
    digest: impl Fn(&T) -> u64,
) -> Result<WorkerLine> {
    let opts = WorkerOptions::default().worker_id(a.worker_id.clone());
    let mut w = Worker::<T>::open(&CoreResolver, &a.mux_id, opts).await?;
    let open_ms = t.elapsed().as_secs_f64() * 1000.0;
    let claim_start_us = unix_us();
    let mut indices = Vec::new();
    let (mut count, mut checksum, mut last_element_us) = (0u64, 0u64, 0u64);
    while let Some(r) = w.next().await {
        let (i, v) = r?;
        last_element_us = unix_us();
        count += 1;
        checksum = checksum.wrapping_add(digest(&v));
        if a.indices {
            indices.push(i);
        }
    }
    Ok(WorkerLine {
        worker: a.worker_id.clone(),
        count,
        indices,
        open_ms,
        claim_start_us,
        last_element_us,
        end_us: unix_us(),
        vmhwm_before_kib,
        vmhwm_kib: peak_rss_kib().unwrap_or(0),
        progress: w.progress().clone(),
        checksum,
    })
}

/// Starts `procs` worker processes on a session and collects their lines.
fn run_workers(mux_id: &str, kind: &str, procs: usize, indices: bool) -> Result<Vec<WorkerLine>> {
    let exe = std::env::current_exe().context("cannot find the bench binary")?;
    let mut children = Vec::with_capacity(procs);
    for k in 0..procs {
        let mut cmd = Command::new(&exe);
        cmd.args([
            "__worker",
            "--mux-id",
            mux_id,
            "--kind",
            kind,
            "--worker-id",
            &format!("p{k:02}"),
        ]);
        if indices {
            cmd.arg("--indices");
        }
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start a worker process")?;
        children.push(child);
    }
    let mut lines = Vec::with_capacity(procs);
    for c in children {
        let out = c.wait_with_output()?;
        ensure!(
            out.status.success(),
            "a worker process failed: {}",
            out.status
        );
        let text = String::from_utf8(out.stdout)?;
        let line = text
            .lines()
            .last()
            .context("a worker process printed nothing")?;
        lines.push(serde_json::from_str(line).context("unreadable worker line")?);
    }
    Ok(lines)
}

/// Scenario 3's results.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LocalReport {
    /// Worker processes.
    pub(crate) processes: usize,
    /// Elements.
    pub(crate) elements: usize,
    /// From starting the first process to the last one exiting.
    pub(crate) end_to_end_seconds: f64,
    /// `elements / end_to_end_seconds`.
    pub(crate) end_to_end_per_s: f64,
    /// From the first process starting to claim to the last element obtained.
    pub(crate) claiming_seconds: f64,
    /// `elements / claiming_seconds`.
    pub(crate) claiming_per_s: f64,
    /// Slowest process start-up and open, ms.
    pub(crate) open_ms_max: f64,
    /// Fewest elements one process obtained.
    pub(crate) per_process_min: u64,
    /// Most elements one process obtained.
    pub(crate) per_process_max: u64,
    /// Creates lost to another process (sum).
    pub(crate) collisions: u64,
    /// Claims pages listed (sum).
    pub(crate) lists: u64,
}

/// Scenario 3: `procs` processes share `e` integers on a local directory.
pub(crate) async fn local_processes(procs: usize, e: usize) -> Result<LocalReport> {
    ensure!(procs > 0 && e > 0, "need at least one process and element");
    let dir = tempfile::tempdir()?;
    let root = UPath::parse(dir.path().to_str().context("temporary path is not UTF-8")?)?;
    let mux = Multiplexer::new(0..e as u64, &root, Some("procs")).await?;
    let id = mux.create_read_session().await?.to_string();
    let t0 = Stopwatch::system();
    let start_us = unix_us();
    let lines = tokio::task::spawn_blocking(move || run_workers(&id, "u64", procs, true)).await??;
    let end_to_end = t0.elapsed().as_secs_f64();
    let mut seen = vec![false; e];
    for l in &lines {
        for &i in &l.indices {
            ensure!(i < e, "index {i} out of range");
            if std::mem::replace(&mut seen[i], true) {
                bail!("element {i} was handed out twice");
            }
        }
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        bail!("element {i} was never handed out");
    }
    let claim_start = lines
        .iter()
        .map(|l| l.claim_start_us)
        .min()
        .unwrap_or(start_us);
    let last = lines
        .iter()
        .map(|l| l.last_element_us)
        .max()
        .unwrap_or(claim_start);
    let claiming = (last.saturating_sub(claim_start) as f64 / 1e6).max(1e-9);
    Ok(LocalReport {
        processes: procs,
        elements: e,
        end_to_end_seconds: end_to_end,
        end_to_end_per_s: e as f64 / end_to_end,
        claiming_seconds: claiming,
        claiming_per_s: e as f64 / claiming,
        open_ms_max: lines.iter().map(|l| l.open_ms).fold(0.0, f64::max),
        per_process_min: lines.iter().map(|l| l.count).min().unwrap_or(0),
        per_process_max: lines.iter().map(|l| l.count).max().unwrap_or(0),
        collisions: lines.iter().map(|l| l.progress.collisions).sum(),
        lists: lines.iter().map(|l| l.progress.lists).sum(),
    })
}

impl LocalReport {
    /// The scenario's table.
    pub(crate) fn render(&self) -> String {
        let mut t = Table::new(&[
            "processes",
            "E",
            "end to end s",
            "elements/s end to end",
            "claiming s",
            "elements/s claiming",
            "per process min-max",
            "collisions",
            "lists",
        ]);
        t.row(vec![
            self.processes.to_string(),
            self.elements.to_string(),
            format!("{:.3}", self.end_to_end_seconds),
            rate(self.end_to_end_per_s),
            format!("{:.3}", self.claiming_seconds),
            rate(self.claiming_per_s),
            format!("{}-{}", self.per_process_min, self.per_process_max),
            self.collisions.to_string(),
            self.lists.to_string(),
        ]);
        format!(
            "## Local filesystem, worker processes (zero work)\n\n{}\n\
             End to end: from starting the first process to the last one exiting (process start-up and \
             opening included); claiming: from the first `next()` to the last element. Slowest start-up + open: {:.0} ms.\n",
            t.render(),
            self.open_ms_max
        )
    }
}

/// Scenario 5's results.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MemoryReport {
    /// Elements.
    pub(crate) elements: usize,
    /// The dataset's serialized size (the data file), bytes.
    pub(crate) data_bytes: u64,
    /// `data_bytes / elements`.
    pub(crate) bytes_per_element: f64,
    /// The worker's peak resident memory (VmHWM), KiB.
    pub(crate) peak_kib: u64,
    /// Its peak before opening the session (runtime and binary), KiB.
    pub(crate) before_open_kib: u64,
    /// `2 * data_bytes + 16 MiB`, in KiB.
    pub(crate) limit_kib: u64,
    /// `peak_kib <= limit_kib`.
    pub(crate) within_limit: bool,
    /// Seconds the worker took (start-up to exit).
    pub(crate) seconds: f64,
}

/// Scenario 5: one worker process takes all `e` records of a local session.
pub(crate) async fn memory(e: usize) -> Result<MemoryReport> {
    ensure!(e > 0, "need at least one element");
    let dir = tempfile::tempdir()?;
    let root = UPath::parse(dir.path().to_str().context("temporary path is not UTF-8")?)?;
    let mux = Multiplexer::new((0..e as u64).map(Record::new), &root, Some("memory")).await?;
    let id = mux.create_read_session().await?;
    let ids = id.to_string();
    let t0 = Stopwatch::system();
    let lines =
        tokio::task::spawn_blocking(move || run_workers(&ids, "record", 1, false)).await??;
    let seconds = t0.elapsed().as_secs_f64();
    let l = &lines[0];
    ensure!(
        l.count == e as u64,
        "the worker obtained {} of {e} elements",
        l.count
    );
    let expected: u64 = (0..e as u64)
        .map(|i| {
            let r = Record::new(i);
            r.id ^ r.params.len() as u64
        })
        .fold(0u64, u64::wrapping_add);
    ensure!(l.checksum == expected, "the worker decoded other elements");
    ensure!(mux.done(&id).await?, "the session is not done");
    let data_bytes = mux.manifest().data_size;
    let limit_kib = (2 * data_bytes + 16 * 1024 * 1024) / 1024;
    Ok(MemoryReport {
        elements: e,
        data_bytes,
        bytes_per_element: data_bytes as f64 / e as f64,
        peak_kib: l.vmhwm_kib,
        before_open_kib: l.vmhwm_before_kib,
        limit_kib,
        within_limit: l.vmhwm_kib <= limit_kib,
        seconds,
    })
}

impl MemoryReport {
    /// The scenario's table.
    pub(crate) fn render(&self) -> String {
        let mib = |k: u64| k as f64 / 1024.0;
        let mut t = Table::new(&[
            "elements",
            "bytes/element",
            "data MiB",
            "peak MiB",
            "before open MiB",
            "limit MiB",
            "within",
            "seconds",
        ]);
        t.row(vec![
            self.elements.to_string(),
            format!("{:.1}", self.bytes_per_element),
            format!("{:.2}", self.data_bytes as f64 / 1048576.0),
            format!("{:.2}", mib(self.peak_kib)),
            format!("{:.2}", mib(self.before_open_kib)),
            format!("{:.2}", mib(self.limit_kib)),
            if self.within_limit { "yes" } else { "NO" }.into(),
            format!("{:.2}", self.seconds),
        ]);
        format!(
            "## Memory of one worker process (local filesystem)\n\n{}\n\
             Peak: VmHWM of the worker process after taking every element; limit: 2 x data + 16 MiB.\n",
            t.render()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_about_100_bytes() {
        for i in [0u64, 7, 99_999, 1 << 40] {
            let b = rmp_size(&Record::new(i));
            assert!((95..=110).contains(&b), "record {i} encodes to {b} bytes");
        }
    }

    fn rmp_size(r: &Record) -> usize {
        cloudmux_mux::encode_elements([r]).unwrap().0.len() - 1
    }
}
