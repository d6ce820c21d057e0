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
//! ```
//!
//! Exit status: 0 on success, 2 on usage errors, 1 on any unexpected error.

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: cmx-helper race URL_PREFIX KEYS TAG | cmx-helper read URL | cmx-helper mux MUX_ID WORKER"
    );
    ExitCode::from(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
