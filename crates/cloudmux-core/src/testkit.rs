//! The conformance suite every backend runs (feature `testkit`).
//!
//! Each check takes a [`UPath`] below which it may write freely (a fresh,
//! random prefix) and panics with a clear message when the backend breaks the
//! [`Store`](crate::Store) contract. What a backend can do is read from its
//! own [`Capabilities`](crate::Capabilities) (conditional delete must either
//! work or answer `Unsupported` without deleting), never skipped;
//! [`SuiteConfig`] only sizes the checks.
//!
//! A backend crate runs the whole suite with one macro:
//!
//! ```ignore
//! cloudmux_core::conformance_tests!(async { my_backend_fresh_root().await });
//! ```
//!
//! which expands to one `#[tokio::test]` per check, or calls [`run_all`].

pub mod http;
pub mod process;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, ManualClock};
use crate::faults::{FaultConfig, Faulty};
use crate::store::{ListRequest, PutMode};
use crate::util::nonce;
use crate::{ErrorKind, ListQuery, LockOptions, RetryPolicy, UPath};

/// What the suite should expect of a backend, and how hard to push it.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// Keys in the create race (16 tasks each).
    pub race_keys: usize,
    /// Keys written for the listing check.
    pub list_keys: usize,
    /// Requests in flight when writing many keys.
    pub parallelism: usize,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        SuiteConfig {
            race_keys: 100,
            list_keys: 2_500,
            parallelism: 16,
        }
    }
}

/// A fresh random prefix below `base`, for one check.
pub fn fresh(base: &UPath, label: &str) -> UPath {
    base.join(&format!("{label}-{}", &nonce()[..12]))
        .expect("valid test prefix")
}

/// Wraps the path's store in a [`Faulty`] store with these faults.
pub fn faulty(root: &UPath, cfg: FaultConfig) -> (UPath, Arc<Faulty>) {
    let f = Faulty::new(root.store().clone(), cfg);
    let p = UPath::new(f.clone(), root.key()).expect("same key");
    (p, f)
}

/// put/get/head/list/delete round trips and the conditional-write errors.
pub async fn round_trip(root: &UPath, _cfg: &SuiteConfig) {
    let root = fresh(root, "rt");
    let store = root.store().clone();
    let k = |s: &str| format!("{}/{s}", root.key());

    // get / head on a missing key
    let e = store.get(&k("missing")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "get missing: {e}");
    let e = store.head(&k("missing")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "head missing: {e}");

    // create, then create again
    let v1 = store
        .put(&k("a"), Bytes::from_static(b"one"), PutMode::Create)
        .await
        .unwrap()
        .version;
    let e = store
        .put(&k("a"), Bytes::from_static(b"two"), PutMode::Create)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "second create: {e}");
    let g = store.get(&k("a")).await.unwrap();
    assert_eq!(
        &g.bytes[..],
        b"one",
        "a lost create must not change the object"
    );
    assert_eq!(
        g.meta.version.as_ref(),
        Some(&v1),
        "get returns the version put returned"
    );
    let h = store.head(&k("a")).await.unwrap();
    assert_eq!(h.size, 3);
    assert_eq!(
        h.version.as_ref(),
        Some(&v1),
        "head returns the same version"
    );

    // compare-and-swap
    let v2 = store
        .put(
            &k("a"),
            Bytes::from_static(b"two!"),
            PutMode::Update(v1.clone()),
        )
        .await
        .unwrap()
        .version;
    assert_ne!(v1, v2, "a new body gets a new version");
    let e = store
        .put(
            &k("a"),
            Bytes::from_static(b"three"),
            PutMode::Update(v1.clone()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Precondition, "stale update: {e}");
    assert_eq!(&store.get(&k("a")).await.unwrap().bytes[..], b"two!");
    let e = store
        .put(
            &k("nothing"),
            Bytes::from_static(b"x"),
            PutMode::Update(v2.clone()),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Precondition,
        "update of a missing key: {e}"
    );
    assert!(
        store.get(&k("nothing")).await.unwrap_err().is_not_found(),
        "failed update creates nothing"
    );

    // overwrite
    store
        .put(&k("a"), Bytes::from_static(b"four"), PutMode::Overwrite)
        .await
        .unwrap();
    assert_eq!(&store.get(&k("a")).await.unwrap().bytes[..], b"four");
    store
        .put(&k("b/c"), Bytes::new(), PutMode::Overwrite)
        .await
        .unwrap();
    assert_eq!(
        store.get(&k("b/c")).await.unwrap().bytes.len(),
        0,
        "empty objects round-trip"
    );

    // list
    let page = store
        .list(ListRequest {
            prefix: format!("{}/", root.key()),
            delimiter: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let objs: Vec<_> = page.objects.iter().map(|o| o.key.clone()).collect();
    assert_eq!(objs, vec![k("a")]);
    assert_eq!(page.prefixes, vec![format!("{}/", k("b"))]);
    let all: Vec<_> = root
        .riterdir()
        .map_ok(|p| p.key().to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all, vec![k("a"), k("b/c")]);
    let empty = store
        .list(ListRequest {
            prefix: k("nope/"),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(empty.objects.is_empty() && empty.prefixes.is_empty() && empty.next.is_none());

    // conditional delete, as the backend declares it
    let va = store.head(&k("a")).await.unwrap().version.unwrap();
    let r = store.delete_if(&k("a"), &v1).await;
    if store.capabilities().conditional_delete {
        assert_eq!(
            r.unwrap_err().kind(),
            ErrorKind::Precondition,
            "stale conditional delete"
        );
        store.delete_if(&k("a"), &va).await.unwrap();
        assert!(store.get(&k("a")).await.unwrap_err().is_not_found());
    } else {
        assert_eq!(
            r.unwrap_err().kind(),
            ErrorKind::Unsupported,
            "undeclared conditional delete"
        );
        assert!(
            store.get(&k("a")).await.is_ok(),
            "an unsupported delete_if must not delete"
        );
    }

    // delete
    store.delete(&k("a")).await.unwrap();
    store.delete(&k("a")).await.unwrap();
    store.delete(&k("never-existed")).await.unwrap();
    store.delete(&k("b/c")).await.unwrap();
    assert!(
        !root.is_dir().await.unwrap(),
        "a directory with no objects does not exist"
    );
}

/// 16 tasks race to create each of `race_keys` keys: exactly one wins each.
pub async fn create_race(root: &UPath, cfg: &SuiteConfig) {
    let root = fresh(root, "race");
    create_race_on(&root, cfg.race_keys, 16).await;
}

async fn create_race_on(root: &UPath, keys: usize, tasks: usize) {
    let winners = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let root = root.clone();
        let winners = winners.clone();
        handles.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for i in 0..keys {
                // Each task writes a body unique to it, so a create whose
                // response was lost is settled exactly by reading back.
                let body = format!("task {t} nonce {}", nonce());
                let p = root.join(&format!("k{i:04}")).unwrap();
                let ours = match p.write_bytes(body.clone()).await {
                    Ok(_) => true,
                    Err(e) if e.is_already_exists() => false,
                    // The body is unique to this task and this key (it
                    // carries a nonce), so reading back settles it exactly.
                    Err(e) if e.is_outcome_unknown() => p.read_text().await.unwrap() == body,
                    Err(e) => panic!("create race: unexpected error {e}"),
                };
                if ours {
                    winners.fetch_add(1, Ordering::SeqCst);
                    won.push((i, body));
                }
            }
            won
        }));
    }
    let mut by_key = vec![None; keys];
    for h in handles {
        for (i, body) in h.await.unwrap() {
            assert!(by_key[i].is_none(), "key {i} has two winners");
            by_key[i] = Some(body);
        }
    }
    assert_eq!(
        winners.load(Ordering::SeqCst),
        keys,
        "every key has exactly one winner"
    );
    for (i, body) in by_key.into_iter().enumerate() {
        let stored = root
            .join(&format!("k{i:04}"))
            .unwrap()
            .read_text()
            .await
            .unwrap();
        assert_eq!(Some(stored), body, "key {i} holds its winner's body");
    }
}

/// A counter document. `recent` keeps the nonces of the writes, so a
/// writer whose response was lost can tell whether its increment landed even
/// after others wrote on top of it (an idempotency key, as real protocols use).
#[derive(Serialize, Deserialize)]
struct Counter {
    n: u64,
    recent: Vec<String>,
}

/// 8 tasks each add 50 by compare-and-swap: the total is exactly 400.
pub async fn cas_counter(root: &UPath, _cfg: &SuiteConfig) {
    let root = fresh(root, "cas");
    cas_counter_on(&root, 8, 50).await;
}

async fn cas_counter_on(root: &UPath, tasks: u64, each: u64) {
    let keep = (tasks * each) as usize;
    let p = root.join("counter").unwrap();
    p.write_json(&Counter {
        n: 0,
        recent: vec![],
    })
    .await
    .unwrap();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let p = p.clone();
        handles.push(tokio::spawn(async move {
            let mut done = 0;
            let mut conflicts = 0u64;
            while done < each {
                let g = p.get().await.unwrap();
                let c: Counter = serde_json::from_slice(&g.bytes).unwrap();
                let mine = nonce();
                let mut recent = c.recent;
                recent.push(mine.clone());
                // Keep every nonce of the run: a writer whose response was
                // lost retries after a backoff, and on a fast store more
                // than a short window of writes land meanwhile (a window of
                // 64 let a landed increment look lost and be done twice).
                if recent.len() > keep {
                    recent.remove(0);
                }
                let next = Counter { n: c.n + 1, recent };
                let body = Bytes::from(serde_json::to_vec(&next).unwrap());
                match p.put(body, PutMode::Update(g.version())).await {
                    Ok(_) => done += 1,
                    Err(e) if e.is_precondition() || e.is_outcome_unknown() => {
                        // Lost the race, or won it with the response lost and
                        // others wrote since: the history decides.
                        let now: Counter = p.read_json().await.unwrap();
                        if now.recent.contains(&mine) {
                            done += 1;
                            continue;
                        }
                        conflicts += 1;
                        // Back off a little so the contenders do not lock-step.
                        let d = Duration::from_millis(fastrand::u64(0..=(conflicts.min(8) * 2)));
                        p.clock().sleep(d).await;
                    }
                    Err(e) => panic!("counter: unexpected error {e}"),
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let c: Counter = p.read_json().await.unwrap();
    assert_eq!(
        c.n,
        tasks * each,
        "compare-and-swap lost or doubled an increment"
    );
}

/// 2,500 keys across pages, one level and recursive, in order.
pub async fn listing(root: &UPath, cfg: &SuiteConfig) {
    let root = fresh(root, "list");
    let n = cfg.list_keys;
    let keys: Vec<String> = (0..n)
        .map(|i| {
            if i % 10 == 0 {
                format!("top{i:05}")
            } else {
                format!("d{}/k{i:05}", i % 7)
            }
        })
        .collect();
    futures::stream::iter(keys.clone())
        .map(|k| {
            let p = root.join(&k).unwrap();
            async move { p.write_bytes(Bytes::from_static(b"x")).await }
        })
        .buffer_unordered(cfg.parallelism)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let mut expect: Vec<String> = keys.iter().map(|k| format!("{}/{k}", root.key())).collect();
    expect.sort();

    // recursive, default pages
    let got: Vec<String> = root
        .riterdir()
        .map_ok(|p| p.key().to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(got.len(), n, "recursive listing count");
    assert_eq!(got, expect, "recursive listing order");

    // recursive, small pages through tokens
    let mut token = None;
    let mut paged = Vec::new();
    let mut pages = 0;
    loop {
        let q = ListQuery {
            token,
            limit: Some(700),
            ..ListQuery::default()
        };
        let page = root.list_page(&q).await.unwrap();
        assert!(page.objects.len() <= 700, "a page respects its limit");
        pages += 1;
        paged.extend(page.objects.into_iter().map(|o| o.key));
        match page.next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert!(pages >= n / 700, "listing took {pages} pages");
    assert_eq!(paged, expect, "paged listing");

    // start_after from the middle
    let mid = expect[n / 2].clone();
    let q = ListQuery {
        start_after: Some(root.relative(&mid).unwrap().to_string()),
        limit: Some(10),
        ..ListQuery::default()
    };
    let page = root.list_page(&q).await.unwrap();
    assert_eq!(
        page.objects.first().map(|o| o.key.clone()),
        Some(expect[n / 2 + 1].clone()),
        "start_after"
    );

    // one level
    let children: Vec<String> = root
        .iterdir()
        .map_ok(|p| p.name().to_string())
        .try_collect()
        .await
        .unwrap();
    let mut want: BTreeSet<String> = (0..7).map(|d| format!("d{d}")).collect();
    want.extend(keys.iter().filter(|k| !k.contains('/')).cloned());
    assert_eq!(
        children,
        want.into_iter().collect::<Vec<_>>(),
        "one-level listing"
    );

    // one level, small pages: each prefix exactly once
    let mut token = None;
    let mut seen = Vec::new();
    loop {
        let q = ListQuery {
            delimiter: true,
            token,
            limit: Some(50),
            ..ListQuery::default()
        };
        let page = root.list_page(&q).await.unwrap();
        seen.extend(page.prefixes);
        seen.extend(page.objects.into_iter().map(|o| o.key));
        match page.next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    seen.sort();
    let before = seen.len();
    seen.dedup();
    assert_eq!(
        before,
        seen.len(),
        "a prefix was reported twice across pages"
    );
    assert_eq!(seen.len(), children.len());

    assert_eq!(root.rmrf().await.unwrap(), n);
    assert!(!root.is_dir().await.unwrap());
}

/// Keys with spaces, unicode and many slashes round-trip and list.
pub async fn odd_keys(root: &UPath, _cfg: &SuiteConfig) {
    let root = fresh(root, "odd");
    let names = [
        "with space/and more spaces.txt",
        "ünïcødé/日本語/файл",
        "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/deep",
        "sym+bols=&$@,;'!()~",
        "emoji-🚀/x",
        "per%cent/%20",
    ];
    for n in names {
        let p = root.join(n).unwrap();
        p.write_text(n).await.unwrap();
        assert_eq!(p.read_text().await.unwrap(), n, "round trip of {n:?}");
        assert!(p.is_file().await.unwrap());
    }
    let mut want: Vec<String> = names
        .iter()
        .map(|n| format!("{}/{n}", root.key()))
        .collect();
    want.sort();
    let got: Vec<String> = root
        .riterdir()
        .map_ok(|p| p.key().to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(got, want);
    assert!(root.join("a/b/c").unwrap().is_dir().await.unwrap());
    assert_eq!(root.rmrf().await.unwrap(), names.len());
}

/// A 16 MiB object round-trips intact.
pub async fn large_object(root: &UPath, _cfg: &SuiteConfig) {
    let root = fresh(root, "big");
    let mut rng = fastrand::Rng::with_seed(7);
    let data: Vec<u8> = (0..16 * 1024 * 1024).map(|_| rng.u8(..)).collect();
    let p = root.join("big.bin").unwrap();
    p.write_bytes(data.clone()).await.unwrap();
    let info = p.file_info().await.unwrap();
    assert_eq!(info.size, data.len() as u64);
    let back = p.read_bytes().await.unwrap();
    assert!(
        back[..] == data[..],
        "16 MiB object differs after round trip"
    );
    p.remove_file().await.unwrap();
}

/// 8 contenders increment a plain counter object 20 times each under the
/// lock: exactly 160.
pub async fn lock_counter(root: &UPath, _cfg: &SuiteConfig) {
    let root = fresh(root, "lock");
    let p = root.join("plain-counter").unwrap();
    p.write_text("0").await.unwrap();
    let mut handles = Vec::new();
    for t in 0..8 {
        let p = p.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..20 {
                let opts = LockOptions::new(Duration::from_secs(120))
                    .holder(format!("contender-{t}"))
                    .backoff(Duration::from_millis(5), Duration::from_millis(100));
                let g = p.lock_with(opts).await.unwrap();
                // A plain read-modify-write: only the lock keeps it safe.
                let n: u64 = p.read_text().await.unwrap().parse().unwrap();
                p.overwrite_text(&(n + 1).to_string()).await.unwrap();
                g.release().await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(
        p.read_text().await.unwrap(),
        "160",
        "the lock let two holders in"
    );
}

/// `timeout = 0` makes one attempt, fails with `LockTimeout` naming the
/// holder; release is idempotent; the lock is free again afterwards.
pub async fn lock_timeout_zero(root: &UPath, _cfg: &SuiteConfig) {
    let root = fresh(root, "lock0");
    let p = root.join("res").unwrap();
    let g = p
        .lock_with(LockOptions::new(Duration::ZERO).holder("first"))
        .await
        .unwrap();
    let e = p
        .lock_with(LockOptions::new(Duration::ZERO).holder("second"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LockTimeout);
    assert!(
        e.lock_holder().unwrap().contains("first"),
        "timeout names the holder: {e}"
    );
    assert!(e.to_string().contains("first"));
    assert_eq!(
        crate::lock::lock_holder(&p).await.unwrap().as_deref(),
        Some("first")
    );
    g.release().await.unwrap();
    g.release().await.unwrap();
    assert_eq!(crate::lock::lock_holder(&p).await.unwrap(), None);
    let g2 = p
        .lock_with(LockOptions::new(Duration::ZERO).holder("second"))
        .await
        .unwrap();
    g2.release().await.unwrap();
}

/// A holder that disappears is taken over once a contender has watched its
/// lock unchanged for a whole TTL, and not before; the heir's fencing token
/// is larger, and fences the old holder's writes. Runs on a manual clock:
/// deterministic, no sleeping.
pub async fn lock_takeover(root: &UPath, _cfg: &SuiteConfig) {
    let root = fresh(root, "lockttl");
    let clock = ManualClock::new(crate::clock::system().now());
    let p = root
        .join("res")
        .unwrap()
        .with_clock(clock.clone() as Arc<dyn Clock>);
    let ttl = Duration::from_secs(30);
    // Judge expiry only by watching (the storage's clock is not this test's).
    let opts = |who: &str, timeout: Duration| {
        LockOptions::new(timeout)
            .ttl(ttl)
            .holder(who)
            .max_skew(None)
    };
    let dead = p.lock_with(opts("dead", Duration::ZERO)).await.unwrap();
    let t_dead = dead.fencing_token();

    clock.advance(Duration::from_secs(29));
    let e = p.lock_with(opts("heir", Duration::ZERO)).await.unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::LockTimeout,
        "taken over before the TTL"
    );
    let info = e.lock_info().expect("a busy lock says who holds it");
    assert_eq!((info.holder.as_str(), info.token), ("dead", t_dead));

    // Even long after the holder's own expiry, one look is not enough:
    // nobody's wall clock decides.
    clock.advance(Duration::from_secs(60));
    let e = p.lock_with(opts("heir", Duration::ZERO)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LockTimeout);

    // Watching for a whole TTL is.
    let t0 = clock.elapsed();
    let heir = p
        .lock_with(opts("heir", Duration::from_secs(120)))
        .await
        .unwrap();
    let watched = clock.elapsed() - t0;
    assert!(watched >= ttl, "taken over after watching only {watched:?}");
    assert!(heir.fencing_token() > t_dead, "the heir's token is larger");
    assert_eq!(
        crate::lock::lock_holder(&p).await.unwrap().as_deref(),
        Some("heir")
    );

    // The token fences the old holder's writes to a guarded document.
    let guarded =
        crate::cond::CondDoc::<serde_json::Value>::new(root.join("guarded.json").unwrap());
    guarded
        .modify(Some(heir.fencing_token()), |_| {
            Ok(Some(serde_json::json!({"by": "heir"})))
        })
        .await
        .unwrap();
    let e = guarded
        .modify(Some(t_dead), |_| {
            Ok(Some(serde_json::json!({"by": "dead"})))
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Fenced,
        "a stale holder's write is refused"
    );

    // The dead holder comes back: its renew and release must not touch
    // the heir's lock.
    assert_eq!(dead.renew().await.unwrap_err().kind(), ErrorKind::Fenced);
    assert!(!dead.is_held());
    dead.release().await.unwrap();
    assert_eq!(
        crate::lock::lock_holder(&p).await.unwrap().as_deref(),
        Some("heir")
    );

    // Renewing keeps the acquisition time and the token.
    let acquired = heir.acquired();
    clock.advance(Duration::from_secs(10));
    heir.renew().await.unwrap();
    let st = crate::lock::info(&p).await.unwrap().unwrap();
    assert_eq!(
        st.info.acquired, acquired,
        "renew kept the acquisition time"
    );
    assert_eq!(st.info.token, heir.fencing_token());
    assert!(st.info.expires > acquired + ttl, "renew moved the expiry");

    // A waiting contender gets the lock once the heir stops renewing.
    let third = p
        .lock_with(opts("third", Duration::from_secs(120)))
        .await
        .unwrap();
    assert!(third.fencing_token() > heir.fencing_token());
    assert_eq!(heir.release().await.unwrap_err().kind(), ErrorKind::Fenced);
    assert_eq!(
        crate::lock::lock_holder(&p).await.unwrap().as_deref(),
        Some("third")
    );

    // force-unlock needs the current token; a wrong one changes nothing.
    let e = crate::lock::force_unlock(&p, heir.fencing_token())
        .await
        .unwrap_err();
    assert!(e.is_precondition(), "{e}");
    assert!(third.is_held());
    crate::lock::force_unlock(&p, third.fencing_token())
        .await
        .unwrap();
    assert_eq!(crate::lock::lock_holder(&p).await.unwrap(), None);
    let fourth = p.lock_with(opts("fourth", Duration::ZERO)).await.unwrap();
    assert!(fourth.fencing_token() > third.fencing_token());
    fourth.release().await.unwrap();
}

/// The create race and the counter under 10% transient errors and 2% lost
/// responses.
pub async fn faults(root: &UPath, cfg: &SuiteConfig) {
    let root = fresh(root, "faults");
    let (fp, f) = faulty(&root, FaultConfig::faults(0.10, 0.02, 0xfa17));
    let fp = fp.with_retry(RetryPolicy {
        max_attempts: 30,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
    });
    create_race_on(&fp.join("race").unwrap(), cfg.race_keys.min(50), 16).await;
    cas_counter_on(&fp.join("cas").unwrap(), 8, 50).await;
    let s = f.stats();
    assert!(
        s.injected_transient > 0 && s.injected_lost > 0,
        "faults were injected: {s:?}"
    );
}

/// Runs every check in order.
pub async fn run_all(root: &UPath, cfg: &SuiteConfig) {
    round_trip(root, cfg).await;
    create_race(root, cfg).await;
    cas_counter(root, cfg).await;
    listing(root, cfg).await;
    odd_keys(root, cfg).await;
    large_object(root, cfg).await;
    lock_counter(root, cfg).await;
    lock_timeout_zero(root, cfg).await;
    lock_takeover(root, cfg).await;
    faults(root, cfg).await;
}

/// Expands to one `#[tokio::test]` per conformance check. The argument is an
/// expression evaluating to a future of `(UPath, SuiteConfig)`: a fresh root
/// for the backend under test and what to expect of it.
#[macro_export]
macro_rules! conformance_tests {
    ($setup:expr) => {
        $crate::conformance_tests!(@each $setup;
            round_trip, create_race, cas_counter, listing, odd_keys, large_object,
            lock_counter, lock_timeout_zero, lock_takeover, faults);
    };
    (@each $setup:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (root, cfg) = $setup.await;
                $crate::testkit::$name(&root, &cfg).await;
            }
        )*
    };
}
