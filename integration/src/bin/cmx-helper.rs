//! A helper program the integration tests spawn as separate OS processes.
//!
//! It opens paths by URL through the `cloudmux` facade, exactly as a worker on
//! another machine would (credentials and endpoints from the environment).
//!
//! ```text
//! cmx-helper race URL_PREFIX KEYS TAG   # create URL_PREFIX/k0000.. with a body naming TAG;
//!                                       # prints one line "won N" per key won
//! cmx-helper read URL                   # prints the object's text
//! cmx-helper mux MUX_ID WORKER           # joins the session; prints "got I V" per
//!                                       # element, then "progress CLAIMED COLLISIONS LISTS MARKERS"
//! cmx-helper fork URL_DIR               # writes URL_DIR/parent.txt, forks, and the child
//!                                       # writes and reads URL_DIR/child.txt through the same
//!                                       # registry; exits with the child's status
//! ```
//!
//! Exit status: 0 on success, 2 on usage errors, 1 on any unexpected error.

use std::process::ExitCode;

use std::io::Write as _;
use std::time::Duration;

fn usage() -> ExitCode {
    eprintln!(
        "usage: cmx-helper race URL_PREFIX KEYS TAG | cmx-helper read URL | \
         cmx-helper mux MUX_ID WORKER | cmx-helper fork URL_DIR"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `fork` manages its runtimes itself: it forks between two of them.
    if let ["fork", dir] = args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        return fork(dir);
    }
    current_thread().block_on(run(args))
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

async fn run(args: Vec<String>) -> ExitCode {
    let r = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["race", prefix, keys, tag] => match keys.parse::<usize>() {
            Ok(n) => race(prefix, n, tag).await,
            Err(_) => return usage(),
        },
        ["read", url] => read(url).await,
        ["mux", id, worker] => mux(id, worker).await,
        _ => return usage(),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cmx-helper: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn race(prefix: &str, keys: usize, tag: &str) -> cloudmux::Result<()> {
    let root = cloudmux::path(prefix).await?;
    for i in 0..keys {
        let p = root.join(&format!("k{i:04}"))?;
        let body = format!("{tag} {}", cloudmux::util::nonce());
        match p.write_text(&body).await {
            Ok(_) => println!("won {i}"),
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn mux(id: &str, worker: &str) -> cloudmux::Result<()> {
    let opts = cloudmux::mux::WorkerOptions::default().worker_id(worker);
    let mut w = cloudmux::worker::<u64>(id, opts).await?;
    let mut transient = 0;
    while let Some(r) = w.next().await {
        match r {
            Ok((i, v)) => println!("got {i} {v}"),
            // The worker settles an uncertain claim on the next call.
            Err(e) if e.is_retryable() && transient < 20 => transient += 1,
            Err(e) => return Err(e),
        }
    }
    let p = w.progress();
    println!(
        "progress {} {} {} {}",
        p.claimed, p.collisions, p.lists, p.marker_checks
    );
    Ok(())
}

async fn read(url: &str) -> cloudmux::Result<()> {
    let p = cloudmux::path(url).await?;
    println!("{}", p.read_text().await?);
    Ok(())
}

/// The parent writes through the global registry on a current-thread
/// runtime, which stays alive (with its client and the client's pooled
/// connection) across the `fork`; the child, on a runtime of its own, must
/// get a client of its own from the same registry.
fn fork(dir: &str) -> ExitCode {
    let parent = current_thread();
    let wrote = parent.block_on(async {
        let p = cloudmux::path(&format!("{dir}/parent.txt")).await?;
        p.write_text("written by the parent").await?;
        p.read_text().await
    });
    if let Err(e) = wrote {
        eprintln!("cmx-helper fork: the parent failed: {e}");
        return ExitCode::FAILURE;
    }
    match fork_and_wait(|| child(dir)) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => {
            eprintln!("cmx-helper fork: the child exited with {code}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cmx-helper fork: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The forked child's work; its exit status.
fn child(dir: &str) -> i32 {
    let rt = current_thread();
    let clock = cloudmux::clock::system();
    let work = async {
        let p = cloudmux::path(&format!("{dir}/child.txt")).await?;
        p.write_text("written by the child").await?;
        let mine = p.read_text().await?;
        let theirs = cloudmux::path(&format!("{dir}/parent.txt"))
            .await?
            .read_text()
            .await?;
        Ok::<_, cloudmux::Error>((mine, theirs))
    };
    // A client inherited from the parent would wait forever for connections
    // only the parent serves: give up instead, loudly.
    let r = rt.block_on(cloudmux::clock::timeout(
        clock.as_ref(),
        Duration::from_secs(60),
        work,
    ));
    match r {
        Some(Ok((mine, theirs))) => {
            println!("child read: {mine}; parent's: {theirs}");
            0
        }
        Some(Err(e)) => {
            eprintln!("cmx-helper fork: the child failed: {e}");
            1
        }
        None => {
            eprintln!("cmx-helper fork: the child got no answer within 60 s");
            3
        }
    }
}

/// Runs `child` in a forked copy of this process and returns its exit status
/// (128 + the signal number when a signal ended it).
#[allow(unsafe_code)]
fn fork_and_wait(child: impl FnOnce() -> i32) -> std::io::Result<i32> {
    // Nothing buffered may be written twice.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: the one `fork` of the project. It is called from the main
    // thread outside any runtime; the only other threads are idle blocking-pool
    // threads of the parent's current-thread runtime, which hold no lock the
    // child takes (glibc's fork handlers keep malloc consistent). The child
    // never touches the parent's runtime: it builds its own, and leaves
    // through `process::exit`, so no destructor of the parent's state runs
    // in it.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            let code = child();
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().flush();
            std::process::exit(code)
        }
        pid => {
            let mut status = 0;
            // SAFETY: waits for the child forked just above; `status` is a
            // valid place for its exit status.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            if r == -1 {
                Err(std::io::Error::last_os_error())
            } else if libc::WIFEXITED(status) {
                Ok(libc::WEXITSTATUS(status))
            } else {
                Ok(128 + libc::WTERMSIG(status))
            }
        }
    }
}
