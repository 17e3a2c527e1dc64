//! The per-thread snapshot cache: a reader never sees a torn view or a view older than one it
//! has already seen, however fast snapshots and overrides are published, with several clients
//! read alternately by one thread.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::{Client, Context, Flag, MemoryProvider};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn client(rt: &tokio::runtime::Runtime, provider: &MemoryProvider) -> Client {
    rt.block_on(Client::builder().provider(provider.clone()).build())
        .unwrap()
}

/// The (snapshot version, override version) pair one view holds, read in one evaluation pass.
fn versions(client: &Client, ctx: &Context) -> (i64, i64) {
    let all = client.all_flags(ctx);
    let get = |k: &str| all.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
    (get("version"), get("mirror"))
}

/// Publishes version `n`: a snapshot whose flag `version` serves `n`, then an override
/// `mirror` = `n`. Every view therefore holds `mirror` = `version` or `version - 1`.
fn publish(provider: &MemoryProvider, client: &Client, n: i64) {
    provider.set_flag(Flag::constant("version", json!(n)));
    client.set_override("mirror", n);
}

#[test]
fn readers_never_see_a_torn_or_older_view_while_versions_are_published() {
    let rt = runtime();
    let providers = [MemoryProvider::new(), MemoryProvider::new()];
    let clients: Vec<Client> = providers.iter().map(|p| client(&rt, p)).collect();
    for (p, c) in providers.iter().zip(&clients) {
        publish(p, c, 1);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let run_for = Duration::from_millis(1500);

    let writers: Vec<_> = providers
        .iter()
        .zip(&clients)
        .map(|(p, c)| {
            let (p, c, stop) = (p.clone(), c.clone(), stop.clone());
            thread::spawn(move || {
                let mut n = 1;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    publish(&p, &c, n);
                    thread::sleep(Duration::from_millis(1));
                }
                n
            })
        })
        .collect();

    let readers: Vec<_> = (0..3)
        .map(|r| {
            let clients = clients.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let ctx = Context::new(format!("reader-{r}"));
                let mut last = [(0i64, 0i64); 2];
                let mut reads = 0u64;
                let mut changes = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Both clients alternately from one thread: each keeps its own copy.
                    for (i, client) in clients.iter().enumerate() {
                        let (v, w) = versions(client, &ctx);
                        assert!(
                            w == v || w == v - 1,
                            "client {i}: torn view, snapshot {v} with override {w}"
                        );
                        assert!(
                            (v, w) >= last[i],
                            "client {i}: went back from {:?} to {:?}",
                            last[i],
                            (v, w)
                        );
                        // The typed fast path reads the same or a newer view.
                        let typed = client.int(&ctx, "version", -1);
                        assert!(typed >= v, "client {i}: int read {typed} after {v}");
                        if (v, w) != last[i] {
                            changes += 1;
                        }
                        last[i] = (v, w).max((typed, typed - 1));
                        reads += 1;
                    }
                }
                (reads, changes)
            })
        })
        .collect();

    thread::sleep(run_for);
    stop.store(true, Ordering::Relaxed);
    let published: Vec<i64> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    for r in readers {
        let (reads, changes) = r.join().unwrap();
        assert!(reads > 100, "only {reads} reads");
        assert!(changes > 20, "readers saw only {changes} new versions");
    }
    assert!(
        published.iter().all(|&n| n > 100),
        "published {published:?}"
    );
    // Once publishing stops, every read serves the last version.
    let ctx = Context::new("after");
    for (c, n) in clients.iter().zip(&published) {
        assert_eq!(versions(c, &ctx), (*n, *n));
    }
}

#[test]
fn more_clients_than_cache_slots_each_serve_their_own_flags() {
    let rt = runtime();
    let providers: Vec<MemoryProvider> = (0..7).map(|_| MemoryProvider::new()).collect();
    let clients: Vec<Client> = providers.iter().map(|p| client(&rt, p)).collect();
    for (i, p) in providers.iter().enumerate() {
        p.set_flag(Flag::constant("who", json!(i)));
    }
    let ctx = Context::new("u");
    for round in 0..50i64 {
        for (i, c) in clients.iter().enumerate() {
            let expected = i as i64 + 100 * (round / 10);
            assert_eq!(
                c.int(&ctx, "who", -1),
                expected,
                "client {i}, round {round}"
            );
        }
        if round % 10 == 9 {
            for (i, p) in providers.iter().enumerate() {
                p.set_flag(Flag::constant(
                    "who",
                    json!(i as i64 + 100 * (round / 10 + 1)),
                ));
            }
        }
    }
}

#[test]
fn a_publication_is_seen_by_the_next_read_of_every_thread() {
    let rt = runtime();
    let provider = MemoryProvider::new();
    let client = client(&rt, &provider);
    provider.set_flag(Flag::boolean("f", false));
    let ctx = Context::new("u");
    // Another thread caches the view, then waits while this one publishes.
    let (to_reader, reader_rx) = std::sync::mpsc::channel::<()>();
    let (to_main, main_rx) = std::sync::mpsc::channel::<bool>();
    let c = client.clone();
    let reader = thread::spawn(move || {
        let ctx = Context::new("u");
        to_main.send(c.bool(&ctx, "f", true)).unwrap();
        reader_rx.recv().unwrap();
        to_main.send(c.bool(&ctx, "f", true)).unwrap();
    });
    assert!(!main_rx.recv().unwrap());
    assert!(!client.bool(&ctx, "f", true));
    provider.set_flag(Flag::boolean("f", true));
    assert!(client.bool(&ctx, "f", false), "this thread's next read");
    to_reader.send(()).unwrap();
    assert!(main_rx.recv().unwrap(), "the other thread's next read");
    reader.join().unwrap();
    client.set_override("f", false);
    assert!(
        !client.bool(&ctx, "f", true),
        "an override is a publication too"
    );
}

#[test]
fn a_thread_still_reads_after_its_clients_are_dropped_and_replaced() {
    let rt = runtime();
    let deadline = Instant::now() + Duration::from_secs(5);
    let ctx = Context::new("u");
    for i in 0..40i64 {
        let provider = MemoryProvider::new();
        provider.set_flag(Flag::constant("n", json!(i)));
        let c = client(&rt, &provider);
        assert_eq!(c.int(&ctx, "n", -1), i);
        drop(c);
        assert!(Instant::now() < deadline);
    }
}

#[test]
fn an_old_snapshot_is_freed_once_every_thread_has_read_a_newer_one() {
    let rt = runtime();
    for flags in [10usize, 5000] {
        let provider = MemoryProvider::new();
        let client = client(&rt, &provider);
        let mut doc = feature::FlagDocument::default();
        for i in 0..flags {
            let f = Flag::boolean(format!("f{i}"), true);
            doc.flags.insert(f.key.clone(), f.into());
        }
        provider.replace(doc);
        let ctx = Context::new("u");
        assert!(client.bool(&ctx, "f1", false));
        // Another thread reads (and keeps a copy of) the same view.
        let c = client.clone();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (read, has_read) = std::sync::mpsc::channel::<()>();
        let reader = thread::spawn(move || {
            let ctx = Context::new("v");
            assert!(c.bool(&ctx, "f1", false));
            read.send(()).unwrap();
            wait.recv().unwrap();
            assert!(!c.bool(&ctx, "f1", true));
        });
        has_read.recv().unwrap();
        let old = Arc::downgrade(&client.snapshot());
        provider.set_flag(Flag::boolean("f1", false));
        assert!(!client.bool(&ctx, "f1", true));
        assert!(old.upgrade().is_some(), "the other thread still holds it");
        go.send(()).unwrap();
        reader.join().unwrap();
        // No further publication: the last reader's release frees it (off its thread when large).
        let deadline = Instant::now() + Duration::from_secs(5);
        while old.upgrade().is_some() {
            assert!(
                Instant::now() < deadline,
                "{flags} flags: the old snapshot is never freed"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}
