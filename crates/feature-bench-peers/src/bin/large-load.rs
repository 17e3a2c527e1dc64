//! Loads a flag document the way providers do (`parse_document`, then compile) and reports
//! where time and memory go: each phase's wall time, the heap held by the snapshot and the
//! peak heap while loading (a counting global allocator), and, for documents with a segment
//! `big`, the time of a membership test (members and non-members, beside a flag without rules).
//!
//! ```text
//! cargo run -p feature-bench-peers --release --bin large-load -- flags.json [ROUNDS]
//! ```
#![allow(unsafe_code)] // a counting global allocator

use feature_core::{parse_document, Format};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::process::ExitCode;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

/// The system allocator, counting bytes in use and their peak.
struct Counting;

static IN_USE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// Bytes a thread allocates (or frees) before it adds them to the shared count: threads that
/// load in parallel do not contend for the counters on every allocation. The peak is short by
/// at most this much per running thread, and a thread that ends leaves at most this much
/// uncounted (the loader's threads: well under a MiB in all).
const BATCH: isize = 16 * 1024;

thread_local! {
    static PENDING: Cell<isize> = const { Cell::new(0) };
}

fn add(n: isize) {
    let pending = PENDING.try_with(|p| {
        let sum = p.get() + n;
        if sum.abs() < BATCH {
            p.set(sum);
            0
        } else {
            p.set(0);
            sum
        }
    });
    let n = pending.unwrap_or(n);
    if n != 0 {
        let now = IN_USE.fetch_add(n, Ordering::Relaxed) + n;
        if now > PEAK.load(Ordering::Relaxed) {
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
    }
}

/// Adds the calling thread's pending bytes to the shared count.
fn flush() {
    add(0);
    if let Ok(n) = PENDING.try_with(|p| p.replace(0)) {
        IN_USE.fetch_add(n, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting only updates
// two atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn mib(bytes: isize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: large-load FILE [ROUNDS]");
        return ExitCode::FAILURE;
    };
    let rounds: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(3);
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let format = Format::from_path(std::path::Path::new(path));
    println!("{path}: {:.1} MiB of text", mib(text.len() as isize));
    for round in 0..rounds {
        flush();
        let base = IN_USE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let t0 = Instant::now();
        let parsed = match parse_document(&text, format) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let t1 = Instant::now();
        flush();
        let after_parse = IN_USE.load(Ordering::Relaxed) - base;
        let snapshot = parsed.compile(None);
        let t2 = Instant::now();
        flush();
        let held = IN_USE.load(Ordering::Relaxed) - base;
        let peak = PEAK.load(Ordering::Relaxed) - base;
        println!(
            "round {round}: parse {:.0} ms, compile {:.0} ms, load {:.0} ms; heap after parse {:.1} MiB, held by the snapshot {:.1} MiB, peak {:.1} MiB; {} flags, {} diagnostics",
            (t1 - t0).as_secs_f64() * 1e3,
            (t2 - t1).as_secs_f64() * 1e3,
            (t2 - t0).as_secs_f64() * 1e3,
            mib(after_parse),
            mib(held),
            mib(peak),
            snapshot.len(),
            snapshot.diagnostics().len()
        );
        if snapshot.document().segments.contains_key("big") {
            membership(&snapshot);
        }
        let t3 = Instant::now();
        drop(snapshot);
        println!("  drop {:.0} ms", t3.elapsed().as_secs_f64() * 1e3);
    }
    ExitCode::SUCCESS
}

/// Times `segmentMatch` of the segment `big` on members (hits) and non-members (misses), beside
/// the same flag with a `startsWith` clause in place of `segmentMatch` (matching, not matching)
/// and a flag without rules, so that the segment's part can be read off: membership ≈
/// segmentMatch flag − `startsWith` flag with the same outcome. Members are the segment's first keys, spread
/// over the whole set; non-members are keys of the same shape beyond its end. Five rounds of
/// 2^20 evaluations each, interleaved; the median round is printed.
fn membership(snapshot: &feature_core::Snapshot) {
    let doc = parse_document(
        r#"{"flags":{
            "in-big":{"type":"bool","default":false,"rules":[{"clauses":[{"attribute":"key","operator":"segmentMatch","values":["big"]}],"variation":1}],"fallthrough":{"variation":0}},
            "rule-hit":{"type":"bool","default":false,"rules":[{"clauses":[{"attribute":"key","operator":"startsWith","values":["user-"]}],"variation":1}],"fallthrough":{"variation":0}},
            "rule-miss":{"type":"bool","default":false,"rules":[{"clauses":[{"attribute":"key","operator":"startsWith","values":["nobody-"]}],"variation":1}],"fallthrough":{"variation":0}},
            "no-rule":{"type":"bool","default":false,"fallthrough":{"variation":1}}}}"#,
        Format::Json,
    );
    let Ok(probe) = doc else { return };
    let mut document = (**snapshot.document()).clone();
    let size = document.segments.get("big").map_or(0, |s| s.included.len());
    document.flags.extend(probe.document.flags);
    let with_probe = feature_core::compile(document);
    let n = 1 << 20;
    let spread = |i: usize| i * 1953 % size.max(1);
    let hits: Vec<feature_core::Context> = (0..1024)
        .map(|i| feature_core::Context::new(format!("user-{:08}", spread(i))))
        .collect();
    let misses: Vec<feature_core::Context> = (0..1024)
        .map(|i| feature_core::Context::new(format!("user-{:08}", size + spread(i))))
        .collect();
    let time = |flag: &str, contexts: &[feature_core::Context], expect: bool| {
        let t = Instant::now();
        let mut agree = 0usize;
        for i in 0..n {
            let ctx = &contexts[i & 1023];
            let on = with_probe
                .evaluate(black_box(flag), black_box(ctx))
                .value()
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false);
            agree += usize::from(on == expect);
        }
        let ns = t.elapsed().as_secs_f64() * 1e9 / n as f64;
        (ns, agree == n)
    };
    let mut rounds: [Vec<f64>; 5] = Default::default();
    let mut right = true;
    for _ in 0..5 {
        for (i, (flag, contexts, expect)) in [
            ("in-big", &hits, true),
            ("in-big", &misses, false),
            ("rule-hit", &hits, true),
            ("rule-miss", &misses, false),
            ("no-rule", &hits, true),
        ]
        .into_iter()
        .enumerate()
        {
            let (ns, ok) = time(flag, contexts, expect);
            rounds[i].push(ns);
            right &= ok;
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [hit, miss, rule_hit, rule_miss, base] = rounds.each_mut().map(median);
    println!(
        "  segment of {size} keys: segmentMatch flag {hit:.1} ns (member), {miss:.1} ns (non-member); \
         the same rule with a `startsWith` clause {rule_hit:.1} ns (matching), {rule_miss:.1} ns (not); \
         flag without rules {base:.1} ns; membership ≈ {:.1} ns (member), {:.1} ns (non-member){}",
        hit - rule_hit,
        miss - rule_miss,
        if right { "" } else { "; WRONG ANSWERS" }
    );
}
