//! Heap allocations per evaluation through `feature::Client`, counted by a global allocator:
//! none for `bool` and `int` in the benchmark scenarios, with one client or two read
//! alternately by the same thread (each keeps its own per-thread copy of the view).
//!
//! Each case is evaluated once before counting: the first read of a client on a thread loads
//! the view into the thread's cache.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![allow(dead_code)] // the shared benchmark helpers are not all used here

#[path = "../../feature-core/benches/common/mod.rs"]
mod common;

use common::{context, rollout_contexts, SCENARIOS};
use feature::engine::{parse_document, Format};
use feature::{Client, MemoryProvider};
use feature_testdata::alloc::{allocations, Counting};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ROUNDS: usize = 1000;

fn assert_no_allocation(what: &str, mut eval: impl FnMut()) {
    eval();
    let n = allocations(|| (0..ROUNDS).for_each(|_| eval()));
    assert_eq!(n, 0, "{what}: {n} allocations in {ROUNDS} evaluations");
}

fn client(rt: &tokio::runtime::Runtime) -> Client {
    let document = parse_document(SCENARIOS, Format::Yaml).unwrap().document;
    rt.block_on(
        Client::builder()
            .provider(MemoryProvider::with_document(document))
            .build(),
    )
    .unwrap()
}

#[test]
fn the_counter_counts() {
    assert_eq!(allocations(|| drop(std::hint::black_box(vec![1u8]))), 1);
    assert_eq!(allocations(|| {}), 0);
}

#[test]
fn client_evaluations_allocate_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (one, two) = (client(&rt), client(&rt));
    let ctx = context();
    for key in ["a-bool", "b-rules", "d1-regex", "d2-semver", "e-prereq"] {
        assert!(one.bool(&ctx, key, false), "{key}");
        assert_no_allocation(key, || {
            std::hint::black_box(one.bool(&ctx, key, false));
        });
        assert_no_allocation(&format!("{key}, two clients alternately"), || {
            std::hint::black_box(one.bool(&ctx, key, false));
            std::hint::black_box(two.bool(&ctx, key, false));
        });
    }
    let rollout = rollout_contexts();
    let mut i = 0;
    assert_no_allocation("c-rollout over 1024 keys", || {
        i = (i + 1) % rollout.len();
        std::hint::black_box(one.bool(&rollout[i], "c-rollout", false));
    });
    assert_no_allocation("int of a string flag (WRONG_TYPE)", || {
        std::hint::black_box(one.int(&ctx, "g-string", 0));
    });
}
