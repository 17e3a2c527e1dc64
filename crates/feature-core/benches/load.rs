//! (h) Loading and compiling a 10 000-flag file, and the memory the result takes.
//!
//! The file is generated (`common::generated_document`: eight shapes of flags, from constant
//! booleans to rules with regexes, versions, rollouts, targets and prerequisites), then
//! `parse_document` + `Parsed::compile` are timed, as a provider does on every change. Memory is
//! counted by a global allocator: the heap the compiled snapshot holds (which includes the
//! parsed document it keeps), the peak while loading, and the process's resident set.
//!
//! Run with `cargo bench -p feature-core --bench load`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![allow(unsafe_code)] // a counting global allocator
#![allow(missing_docs)] // criterion's macros generate undocumented items

mod common;

use common::generated_document;
use criterion::{BenchmarkId, Criterion, Throughput};
use feature_core::{parse_document, Format, Snapshot};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The system allocator, keeping the number of bytes in use and its peak.
struct Measuring;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the bookkeeping is two
// atomic counters.
unsafe impl GlobalAlloc for Measuring {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        grew(new_size);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Measuring = Measuring;

const FLAGS: usize = 10_000;

fn load(text: &str, format: Format) -> Snapshot {
    parse_document(text, format)
        .expect("the generated document parses")
        .compile(None)
}

fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn benches(c: &mut Criterion, yaml: &str, json: &str) {
    let mut g = c.benchmark_group("h_load_compile");
    g.throughput(Throughput::Elements(FLAGS as u64));
    for (name, text, format) in [("yaml", yaml, Format::Yaml), ("json", json, Format::Json)] {
        g.bench_function(BenchmarkId::new("10000_flags", name), |b| {
            b.iter(|| load(black_box(text), format))
        });
    }
    // Compilation alone, from a document already read.
    let document = parse_document(json, Format::Json)
        .expect("the generated document parses")
        .document;
    g.bench_function(BenchmarkId::new("10000_flags", "compile_only"), |b| {
        b.iter_batched(
            || document.clone(),
            feature_core::compile,
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn main() {
    let yaml = generated_document(FLAGS);
    let value: serde_json::Value = yaml_value(&yaml);
    let json = serde_json::to_string(&value).expect("JSON");
    drop(value);

    // Memory first, on a quiet heap.
    let mut report = Vec::new();
    for (name, text, format) in [("YAML", &yaml, Format::Yaml), ("JSON", &json, Format::Json)] {
        let rss_before = resident_bytes();
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let began = Instant::now();
        let snapshot = load(text, format);
        let took = began.elapsed();
        assert_eq!(snapshot.len(), FLAGS);
        assert!(!snapshot.has_errors(), "{:?}", snapshot.diagnostics());
        let held = LIVE.load(Ordering::Relaxed) - before;
        let peak = PEAK.load(Ordering::Relaxed) - before;
        let rss = match (rss_before, resident_bytes()) {
            (Some(a), Some(b)) => format!("{:.1} MiB", mib(b.saturating_sub(a))),
            _ => "n/a".into(),
        };
        report.push(format!(
            "{name}: {} bytes of text; one cold load {:.1} ms; the snapshot holds {:.1} MiB of heap \
             ({:.0} bytes per flag, parsed document included); peak while loading {:.1} MiB; \
             resident set grew by {rss}",
            text.len(),
            took.as_secs_f64() * 1e3,
            mib(held),
            held as f64 / FLAGS as f64,
            mib(peak),
        ));
        drop(snapshot);
    }

    // Where a cold load goes: the text parser, the line/column index of every node (built so
    // that diagnostics can be located), the reading of flags (`parse_document` does these
    // three), and compilation.
    for (name, text, format) in [("YAML", &yaml, Format::Yaml), ("JSON", &json, Format::Json)] {
        let t = Instant::now();
        let value: serde_json::Value = match format {
            Format::Yaml => yaml_value(text),
            Format::Json => serde_json::from_str(text).expect("JSON"),
        };
        let text_parse = t.elapsed();
        drop(value);
        let t = Instant::now();
        let locator = feature_core::Locator::new(text);
        let locate = t.elapsed();
        drop(locator);
        let t = Instant::now();
        let parsed = parse_document(text, format).expect("parses");
        let parse_all = t.elapsed();
        let document = parsed.document.clone();
        drop(parsed);
        let t = Instant::now();
        let snapshot = feature_core::compile(document);
        let compile = t.elapsed();
        let t = Instant::now();
        drop(snapshot);
        let free = t.elapsed();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        report.push(format!(
            "{name} phases: parse_document {:.1} ms (text parser {:.1} ms, line/column index {:.1} ms, \
             reading the flags {:.1} ms); compile {:.1} ms; dropping the snapshot {:.1} ms",
            ms(parse_all),
            ms(text_parse),
            ms(locate),
            ms(parse_all.saturating_sub(text_parse + locate)),
            ms(compile),
            ms(free),
        ));
    }

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    benches(&mut c, &yaml, &json);
    c.final_summary();
    println!();
    for line in report {
        println!("{line}");
    }
}

/// The YAML text parser alone.
fn yaml_value(text: &str) -> serde_json::Value {
    serde_yaml_ng::from_str(text).expect("YAML")
}
