//! Criterion benchmarks of the peers (work in progress).
fn main() {}
