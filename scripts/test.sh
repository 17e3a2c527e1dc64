#!/usr/bin/env bash
# Every check and every test of the workspace: formatting, lints, API docs, each feature alone,
# the minimum Rust version, unit, integration, conformance and doc tests. Starts PostgreSQL and Redis first when they are not running,
# installs promtool and the tansu Kafka broker the observability tests use, LaunchDarkly's
# Python SDK the LaunchDarkly events tests compare against, schemathesis for the flag server's
# API fuzzing, and starts the
# open-source Unleash server (from npm) the Unleash provider's tests use; installs Chromium and
# the npm packages of the web UI's browser tests; installs cargo-hack
# and the OFREP clients (npm, pip) the flag server's tests drive;
# runs each fuzz target briefly (installs cargo-afl).
set -euo pipefail
cd "$(dirname "$0")/.."
# About a hundred test binaries: with full debug info and incremental caches they take over
# 30 GB. Line tables keep backtraces readable at a fraction of that, and link faster.
export CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
. scripts/services.sh

ensure_postgres
ensure_unleash
ensure_redis
ensure_promtool
ensure_tansu
ensure_launchdarkly_sdk
ensure_schemathesis
ensure_cargo_hack
ensure_ui_browser
ensure_ofrep_clients
export FEATURE_TEST_POSTGRES_URL=${FEATURE_TEST_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:5432/test}
export FEATURE_TEST_REDIS_URL=${FEATURE_TEST_REDIS_URL:-redis://127.0.0.1:6379}

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
# API docs build without warnings (broken links, missing docs).
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet
# Each crate builds with each of its features alone, and with none.
cargo hack check --workspace --each-feature --no-dev-deps --quiet
# The declared minimum Rust version holds for every dependency a user compiles.
python3 scripts/check-msrv.py
# The middleware examples test themselves (a server on 127.0.0.1, a few requests) and exit.
for example in http grpc; do
  cargo run -q -p feature --all-features --example "$example" -- --once
done
# When a test fails, the end of the Unleash server's log (when this script started it) says
# what the server saw.
unleash_log=target/unleash-server/server.log
cargo test --workspace --all-features || {
  status=$?
  if [ -s "$unleash_log" ]; then
    echo "--- last lines of $unleash_log ---" >&2
    tail -n 40 "$unleash_log" >&2
  fi
  exit "$status"
}
# Every fuzz target for a few seconds on its seed corpus (an unoptimised instrumented build; a
# crash or hang fails). Longer runs: BENCHMARKS.md, "Fuzzing".
FUZZ_PROFILE=quick scripts/fuzz.sh 5
