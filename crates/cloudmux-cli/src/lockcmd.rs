//! `cloudmux lock`, `lock-info` and `force-unlock`: flock(1) for object
//! storage, on the core's lock (`cloudmux::lock`).

use std::io::IsTerminal;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::Result;
use cloudmux::clock::{Stopwatch, rfc3339_secs};
use cloudmux::lock::{self, LockStatus};
use cloudmux::{ErrorKind, LockGuard, LockOptions, Resolver, UPath};
use rustix::process::Signal;

use crate::child::{self, KILL_GRACE, Signals};

/// `lock`: the lock could not be had in time (EX_TEMPFAIL).
pub(crate) const EXIT_BUSY: u8 = 75;
/// `lock`: the lock was lost while the command ran; it was sent SIGTERM.
pub(crate) const EXIT_LOST: u8 = 76;

/// The options of `cloudmux lock`.
#[derive(Debug)]
pub(crate) struct LockArgs {
    pub(crate) path: String,
    /// `None`: wait as long as it takes.
    pub(crate) timeout: Option<Duration>,
    pub(crate) ttl: Duration,
    pub(crate) command: Vec<String>,
}

/// The one line a busy lock gets.
fn busy_line(path: &UPath, waited: Duration, e: &cloudmux::Error) -> String {
    match e.lock_info() {
        Some(i) => format!(
            "{path} is locked by {} since {} until {} (token {}); gave up after {:.1} s. \
             Inspect: cloudmux lock-info {path}; if that holder is dead: cloudmux force-unlock {path} --token {}",
            i.holder,
            rfc3339_secs(i.acquired),
            rfc3339_secs(i.expires),
            i.token,
            waited.as_secs_f64(),
            i.token
        ),
        None => format!(
            "{path} could not be locked within {:.1} s; inspect: cloudmux lock-info {path}",
            waited.as_secs_f64()
        ),
    }
}

pub(crate) async fn lock(args: LockArgs) -> Result<ExitCode> {
    let mut signals = Signals::new()?;
    let path = cloudmux::AnyResolver.resolve(&args.path).await?;
    let opts = LockOptions::new(args.timeout.unwrap_or(Duration::MAX)).ttl(args.ttl);
    let waited = Stopwatch::system();
    let guard = tokio::select! {
        g = path.lock_with(opts) => match g {
            Ok(g) => g,
            Err(e) if e.kind() == ErrorKind::LockTimeout => {
                eprintln!("cloudmux: {}", busy_line(&path, waited.elapsed(), &e));
                return Ok(ExitCode::from(EXIT_BUSY));
            }
            Err(e) => return Err(e.into()),
        },
        sig = signals.recv() => return Ok(ExitCode::from(u8::try_from(128 + sig).unwrap_or(255))),
    };
    tracing::info!(lock = %guard.lock_path(), token = guard.fencing_token(), "lock acquired");
    let code = hold(&path, &guard, &args, &mut signals).await;
    if let Err(e) = guard.release().await {
        // Lost already (reported), or the store failed: it expires after its TTL.
        tracing::warn!(error = %e, "could not release the lock");
    }
    code
}

/// Runs the command while the lock is held.
async fn hold(
    path: &UPath,
    guard: &LockGuard,
    args: &LockArgs,
    signals: &mut Signals,
) -> Result<ExitCode> {
    // Standard input passes through. On a terminal the command stays in
    // our process group, in the foreground (a background group reading
    // the terminal would be stopped), and gets Ctrl-C from the terminal
    // itself; otherwise it gets a group of its own, so that signals reach
    // whatever it started.
    let own_group = !std::io::stdin().is_terminal();
    let mut cmd = tokio::process::Command::new(&args.command[0]);
    cmd.args(&args.command[1..])
        .env("CLOUDMUX_FENCING_TOKEN", guard.fencing_token().to_string())
        .env("CLOUDMUX_LOCK_PATH", path.to_string())
        .stdin(Stdio::inherit())
        .kill_on_drop(true);
    if own_group {
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", args.command[0]))?;
    let pid = child.id();
    let send = |s: Signal| {
        if own_group {
            child::signal_group(pid, s);
        } else {
            child::signal_process(pid, s);
        }
    };
    let clock = path.clock().clone();
    let renewing = keep_held(guard, args.ttl);
    tokio::pin!(renewing);
    let mut lost: Option<String> = None;
    let mut kill_at: Option<Duration> = None;
    let mut signalled = false;
    let watch = Stopwatch::system();
    loop {
        let until_kill = kill_at.map(|k| k.saturating_sub(watch.elapsed()));
        tokio::select! {
            status = child.wait() => {
                let status = status?;
                if let Some(why) = lost {
                    eprintln!(
                        "cloudmux: the lock on {path} was lost while the command ran ({why}); \
                         it was sent SIGTERM and ended with {}",
                        child::describe(&status)
                    );
                    return Ok(ExitCode::from(EXIT_LOST));
                }
                return Ok(ExitCode::from(child::shell_status(&status)));
            }
            why = &mut renewing, if lost.is_none() => {
                send(Signal::TERM);
                lost = Some(why);
                kill_at = Some(watch.elapsed() + KILL_GRACE);
            }
            sig = signals.recv() => {
                // Forwarded; the lock is released once the command exits.
                let s = if signalled { Signal::KILL } else { child::signal_of(sig) };
                if own_group || sig != 2 || signalled {
                    send(s);
                }
                signalled = true;
            }
            _ = clock.sleep(until_kill.unwrap_or(Duration::ZERO)), if until_kill.is_some() => {
                send(Signal::KILL);
                kill_at = None;
            }
        }
    }
}

/// Renews the lock every third of its TTL (never more often than the
/// backend lets one object be rewritten) and returns only when it is lost:
/// taken over, or not renewed for a whole TTL, after which a contender may
/// take it. (`LockGuard::keep_renewed` renews as well, but cannot tell its
/// holder that renewals have been failing for a whole TTL.)
async fn keep_held(guard: &LockGuard, ttl: Duration) -> String {
    let min = guard.lock_path().store().capabilities().min_write_interval;
    let every = (ttl / 3).max(min).max(Duration::from_millis(10));
    let clock = guard.lock_path().clock().clone();
    let mut last_ok = clock.elapsed();
    loop {
        clock.sleep(every).await;
        match guard.renew().await {
            Ok(()) => last_ok = clock.elapsed(),
            Err(e) if e.kind() == ErrorKind::Fenced => {
                return "it was taken over or forced free".into();
            }
            Err(e) => {
                tracing::warn!(error = %e, "lock renewal failed; retrying");
                if clock.elapsed().saturating_sub(last_ok) >= ttl {
                    return format!("renewals failed for a whole TTL: {e}");
                }
            }
        }
    }
}

fn state(s: &Option<LockStatus>) -> &'static str {
    match s {
        None => "none",
        Some(s) if s.held => "held",
        Some(_) => "free",
    }
}

pub(crate) async fn lock_info(path: &str, json: bool) -> Result<ExitCode> {
    let p = cloudmux::AnyResolver.resolve(path).await?;
    let st = lock::info(&p).await?;
    let now = p.clock().now();
    if json {
        let v = match &st {
            None => serde_json::json!({"path": p.to_string(), "state": "none"}),
            Some(s) => serde_json::json!({
                "path": p.to_string(),
                "state": state(&st),
                "holder": s.info.holder,
                "acquired": rfc3339_secs(s.info.acquired),
                "expires": rfc3339_secs(s.info.expires),
                "expired": s.held && s.info.expires < now,
                "token": s.info.token,
                "modified": rfc3339_secs(s.modified),
            }),
        };
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    match &st {
        None => println!("{p}: no lock (never taken)"),
        Some(s) => {
            let until = match s.info.expires.duration_since(now) {
                Ok(d) => format!("in {:.0} s", d.as_secs_f64()),
                Err(e) => format!("{:.0} s ago", e.duration().as_secs_f64()),
            };
            println!("path      {p}");
            println!("state     {}", state(&st));
            println!("holder    {}", s.info.holder);
            println!("acquired  {}", rfc3339_secs(s.info.acquired));
            println!(
                "expires   {} ({until}, by the holder's clock)",
                rfc3339_secs(s.info.expires)
            );
            println!("token     {}", s.info.token);
            println!("modified  {} (storage time)", rfc3339_secs(s.modified));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn force_unlock(path: &str, token: u64) -> Result<ExitCode> {
    let p = cloudmux::AnyResolver.resolve(path).await?;
    match lock::force_unlock(&p, token).await {
        Ok(()) => {
            println!("freed the lock on {p} (token {token})");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.kind() == ErrorKind::Precondition => {
            eprintln!(
                "cloudmux: {}",
                e.message()
                    .unwrap_or("the lock is not held with that token")
            );
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}
