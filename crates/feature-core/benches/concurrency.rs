//! Concurrency benchmark (work in progress).
fn main() {}
