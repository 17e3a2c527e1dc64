//! The `featurectl` binary; the commands live in the library of the same name.

use clap::Parser;

fn main() -> std::process::ExitCode {
    featurectl::run(&featurectl::cli::Cli::parse())
}
