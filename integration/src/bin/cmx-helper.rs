//! A helper program the integration tests spawn as separate OS processes.
//!
//! It opens paths by URL through the `cloudmux` facade, exactly as a worker on
//! another machine would (credentials and endpoints from the environment).
//!
//! ```text
//! cmx-helper race URL_PREFIX KEYS TAG   # create URL_PREFIX/k0000.. with a body naming TAG;
//!                                       # prints one line "won N" per key won
//! cmx-helper read URL                   # prints the object's text
//! ```
//!
//! Exit status: 0 on success, 2 on usage errors, 1 on any unexpected error.

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: cmx-helper race URL_PREFIX KEYS TAG | cmx-helper read URL");
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

async fn read(url: &str) -> cloudmux::Result<()> {
    let p = cloudmux::path(url).await?;
    println!("{}", p.read_text().await?);
    Ok(())
}
