//! Micro-benchmark of the local-filesystem backend.
//!
//! ```text
//! cargo run --release -p cloudmux-core --example local_bench -- [SCENARIO...] [--dir DIR]
//! ```
//!
//! Scenarios (all of them when none is named):
//!
//! - `create`: creates of 100-byte bodies into one directory, one at a time
//!   and 16 in flight;
//! - `raw`: the same file operations from a plain loop without the store, for
//!   reference (temporary file + link + unlink, and `O_EXCL` + write);
//! - `list`: lists all keys of one directory page by page (1,000 a page,
//!   continuing by the `next` token) at 20,000, 60,000 and 200,000 keys;
//! - `delete`: deletes 200,000 keys page by page: list a page, delete its
//!   keys 16 at a time, repeat, once from the first page each time (as
//!   `UPath::rmrf` does) and once continuing by the page's token (after
//!   `sync`, so that the fill's writeback is not measured);
//! - `get`: reads of 100-byte objects, one at a time;
//! - `first-page`: the first page of a directory of 200,000 keys that keeps
//!   changing (what each page of a recursive delete that starts over costs).
//!
//! `--sizes 20000,60000` replaces the key counts of `list` and `delete`;
//! `--inline-limit 0` sends every operation to tokio's blocking pool (see
//! [`LocalFs::with_inline_limit`]).
//! The data lives in a temporary directory below `--dir` (default: the
//! system's temporary directory), removed at the end.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cloudmux_core::clock::Stopwatch;
use cloudmux_core::{ListRequest, LocalFs, PutMode, Store};
use futures::{StreamExt, TryStreamExt};

const BODY: &[u8; 100] = b"0123456789abcdef0123456789abcdef0123456789abcdef\
0123456789abcdef0123456789abcdef0123456789abcdef0123";

struct Args {
    scenarios: Vec<String>,
    dir: Option<PathBuf>,
    sizes: Option<Vec<usize>>,
    inline_limit: Option<usize>,
}

fn args() -> Args {
    let mut a = Args {
        scenarios: vec![],
        dir: None,
        sizes: None,
        inline_limit: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        match s.as_str() {
            "--dir" => a.dir = Some(it.next().expect("--dir DIR").into()),
            "--inline-limit" => {
                a.inline_limit = Some(
                    it.next()
                        .expect("--inline-limit N")
                        .parse()
                        .expect("a number"),
                )
            }
            "--sizes" => {
                a.sizes = Some(
                    it.next()
                        .expect("--sizes N,N")
                        .split(',')
                        .map(|n| n.parse().expect("a number"))
                        .collect(),
                )
            }
            _ => a.scenarios.push(s),
        }
    }
    if a.scenarios.is_empty() {
        a.scenarios = ["raw", "create", "get", "list", "delete"]
            .map(String::from)
            .to_vec();
    }
    a
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:>9.0}/s", n as f64 / d.as_secs_f64())
}

/// Writes `n` keys `<prefix>/<i:09>` with up to 32 creates in flight.
async fn fill(store: &Arc<LocalFs>, prefix: &str, n: usize) {
    futures::stream::iter(0..n)
        .map(|i| {
            let store = store.clone();
            let key = format!("{prefix}/{i:09}");
            async move {
                store
                    .put(&key, Bytes::from_static(BODY), PutMode::Create)
                    .await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
}

async fn list_all(store: &Arc<LocalFs>, prefix: &str) -> (usize, usize) {
    let mut token = None;
    let (mut keys, mut pages) = (0, 0);
    loop {
        let page = store
            .list(ListRequest {
                prefix: format!("{prefix}/"),
                token,
                limit: Some(1000),
                ..Default::default()
            })
            .await
            .unwrap();
        pages += 1;
        keys += page.objects.len();
        match page.next {
            Some(t) => token = Some(t),
            None => return (keys, pages),
        }
    }
}

fn raw(dir: &Path) {
    let n = 20_000;
    let d = dir.join("raw-link");
    std::fs::create_dir_all(&d).unwrap();
    let t = Stopwatch::system();
    for i in 0..n {
        let tmp = d.join(format!(".tmp-{i}"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .unwrap();
        f.write_all(BODY).unwrap();
        drop(f);
        std::fs::hard_link(&tmp, d.join(format!("{i:09}"))).unwrap();
        std::fs::remove_file(&tmp).unwrap();
    }
    println!(
        "raw loop: temporary file + link + unlink   {}",
        rate(n, t.elapsed())
    );
    let d = dir.join("raw-excl");
    std::fs::create_dir_all(&d).unwrap();
    let t = Stopwatch::system();
    for i in 0..n {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(d.join(format!("{i:09}")))
            .unwrap();
        f.write_all(BODY).unwrap();
    }
    println!(
        "raw loop: O_CREAT|O_EXCL + write + close   {}",
        rate(n, t.elapsed())
    );
}

async fn create(store: &Arc<LocalFs>) {
    for round in 0..3 {
        let n = 20_000;
        let prefix = format!("create/seq{round}");
        let t = Stopwatch::system();
        for i in 0..n {
            store
                .put(
                    &format!("{prefix}/{i:09}"),
                    Bytes::from_static(BODY),
                    PutMode::Create,
                )
                .await
                .unwrap();
        }
        println!(
            "create, one at a time, 100 B, round {round}    {}",
            rate(n, t.elapsed())
        );
    }
    let n = 20_000;
    let t = Stopwatch::system();
    fill(store, "create/par", n).await;
    println!(
        "create, 32 in flight, 100 B            {}",
        rate(n, t.elapsed())
    );
    let t = Stopwatch::system();
    let mut lost = 0;
    for i in 0..n {
        let e = store
            .put(
                &format!("create/par/{i:09}"),
                Bytes::from_static(BODY),
                PutMode::Create,
            )
            .await;
        lost += usize::from(e.is_err());
    }
    assert_eq!(lost, n);
    println!(
        "create of an existing key (lost race)  {}",
        rate(n, t.elapsed())
    );
}

async fn get(store: &Arc<LocalFs>) {
    let n = 20_000;
    fill(store, "get", n).await;
    let t = Stopwatch::system();
    for i in 0..n {
        store.get(&format!("get/{i:09}")).await.unwrap();
    }
    println!(
        "get, one at a time, 100 B              {}",
        rate(n, t.elapsed())
    );
}

async fn list(store: &Arc<LocalFs>, sizes: &[usize]) {
    for &n in sizes {
        let prefix = format!("list/n{n}");
        fill(store, &prefix, n).await;
        for round in 0..2 {
            let t = Stopwatch::system();
            let (keys, pages) = list_all(store, &prefix).await;
            assert_eq!(keys, n);
            println!(
                "list {n:>7} keys page by page ({pages} pages), round {round}: {:>8.3} s",
                t.elapsed().as_secs_f64()
            );
        }
    }
}

/// Writes dirty data back and pauses, so that the disk's writeback of a
/// fill does not land in the measurement that follows.
fn settle() {
    let _ = std::process::Command::new("sync").status();
    std::thread::sleep(Duration::from_secs(1));
}

/// Deletes every key below `prefix` page by page: lists a page, deletes its
/// keys 16 at a time, and repeats, from the first page again (as
/// `UPath::rmrf` does) or continuing by the page's token.
async fn delete_pages(store: &Arc<LocalFs>, prefix: &str, by_token: bool) -> (usize, Duration) {
    let mut deleted = 0;
    let mut list_time = Duration::ZERO;
    let mut token = None;
    loop {
        let t_list = Stopwatch::system();
        let page = store
            .list(ListRequest {
                prefix: format!("{prefix}/"),
                limit: Some(1000),
                token: token.take(),
                ..Default::default()
            })
            .await
            .unwrap();
        list_time += t_list.elapsed();
        deleted += page.objects.len();
        futures::stream::iter(page.objects)
            .map(|o| {
                let store = store.clone();
                async move { store.delete(&o.key).await }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        match page.next {
            Some(t) if by_token => token = Some(t),
            Some(_) => {}
            None => return (deleted, list_time),
        }
    }
}

async fn delete(store: &Arc<LocalFs>, sizes: &[usize]) {
    for &n in sizes {
        for by_token in [false, true] {
            let prefix = format!("delete/n{n}-{by_token}");
            fill(store, &prefix, n).await;
            settle();
            let t = Stopwatch::system();
            let (deleted, list_time) = delete_pages(store, &prefix, by_token).await;
            assert_eq!(deleted, n);
            let how = if by_token {
                "continuing by token     "
            } else {
                "from the first page (rmrf)"
            };
            println!(
                "delete {n:>7} keys page by page, {how}: {:>8.3} s ({:.3} s of it listing)",
                t.elapsed().as_secs_f64(),
                list_time.as_secs_f64()
            );
        }
    }
}

/// The first page of a large directory that keeps changing: what each page
/// of a recursive delete that starts over costs.
async fn first_page(store: &Arc<LocalFs>, sizes: &[usize]) {
    for &n in sizes {
        let prefix = format!("first/n{n}");
        fill(store, &prefix, n).await;
        let rounds = 20;
        let mut took = Duration::ZERO;
        for i in 0..rounds {
            // A change, so that no snapshot of the directory at rest serves.
            let k = format!("{prefix}/x{i}");
            store
                .put(&k, Bytes::from_static(BODY), PutMode::Create)
                .await
                .unwrap();
            let t = Stopwatch::system();
            let page = store
                .list(ListRequest {
                    prefix: format!("{prefix}/"),
                    limit: Some(1000),
                    ..Default::default()
                })
                .await
                .unwrap();
            took += t.elapsed();
            assert_eq!(page.objects.len(), 1000);
        }
        println!(
            "first page of a changing directory of {n:>7} keys: {:>7.1} ms",
            took.as_secs_f64() * 1000.0 / rounds as f64
        );
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    let tmp = match &a.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .unwrap();
    let mut store = LocalFs::new(tmp.path()).unwrap();
    if let Some(n) = a.inline_limit {
        store = store.with_inline_limit(n);
    }
    for s in &a.scenarios {
        match s.as_str() {
            "raw" => raw(tmp.path()),
            "create" => create(&store).await,
            "get" => get(&store).await,
            "first-page" => {
                let sizes = a.sizes.clone().unwrap_or(vec![200_000]);
                first_page(&store, &sizes).await
            }
            "list" => {
                let sizes = a.sizes.clone().unwrap_or(vec![20_000, 60_000, 200_000]);
                list(&store, &sizes).await
            }
            "delete" => {
                let sizes = a.sizes.clone().unwrap_or(vec![200_000]);
                delete(&store, &sizes).await
            }
            other => panic!("unknown scenario {other:?}"),
        }
    }
}
