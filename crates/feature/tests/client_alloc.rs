//! Heap allocations per evaluation through `feature::Client`, counted by a global allocator:
//! none for `bool` and `int` in the benchmark scenarios, with one client or two read
//! alternately by the same thread (each keeps its own per-thread copy of the view).
//!
//! Each case is evaluated once before counting: the first read of a client on a thread loads
//! the view into the thread's cache.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![allow(unsafe_code)] // a counting global allocator
#![allow(dead_code)] // the shared benchmark helpers are not all used here

#[path = "../../feature-core/benches/common/mod.rs"]
mod common;

use common::{context, rollout_contexts, SCENARIOS};
use feature::engine::{parse_document, Format};
use feature::{Client, MemoryProvider};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting the allocations made by the current thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns how many allocations it made on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

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
