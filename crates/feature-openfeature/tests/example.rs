//! The `openfeature` example runs to its end: its assertions (a rule match, a multi-kind
//! context, typed values, an error with the application's default) hold.

#[path = "../examples/openfeature.rs"]
mod example;

#[test]
fn the_openfeature_example_runs_and_exits() {
    if let Err(e) = example::main() {
        panic!("the example failed: {e}");
    }
}
