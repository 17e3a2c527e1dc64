#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (AFL++ through cargo-afl, which works with the stable
# toolchain) for SECONDS each (default 10), starting from its seed corpus in fuzz/corpus.
# Installs cargo-afl (and so AFL++) when it is missing. Fails when a target crashes (a panic,
# a broken invariant) or hangs (one input running longer than FUZZ_TIMEOUT_MS, default 5000);
# each finding is replayed so its message is printed, and kept under the output directory.
#
#   scripts/fuzz.sh [SECONDS]              every target
#   FUZZ_TARGETS="sse duration" scripts/fuzz.sh 600
#   FUZZ_PROFILE=quick scripts/fuzz.sh 5     unoptimised build (quicker to build, slower to run)
#
# The instrumented build has compiler flags of its own, so it has its own build directory,
# target/fuzz (under CARGO_TARGET_DIR when that is set); findings go to target/fuzz/afl/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-10}
read -r -a targets <<<"${FUZZ_TARGETS:-flag_document context_json sse launchdarkly unleash duration yaml_paths regex}"
timeout_ms=${FUZZ_TIMEOUT_MS:-5000}
profile=${FUZZ_PROFILE:-release}
cargo_afl_version=0.18.2

if ! cargo afl --version >/dev/null 2>&1; then
  echo "installing cargo-afl $cargo_afl_version (builds AFL++)" >&2
  cargo install --quiet --locked cargo-afl --version "$cargo_afl_version"
fi
# AFL++ is built once per Rust toolchain; `cargo install` normally does it already.
afl_help=$(cargo afl fuzz -h 2>&1 || true)
case "$afl_help" in
  *afl-fuzz*) ;;
  *) cargo afl config --build ;;
esac

target_root=${CARGO_TARGET_DIR:-$PWD/target}
export CARGO_TARGET_DIR=$target_root/fuzz
# Not --locked: the targets build the workspace's crates, so a dependency added to one of them
# must not fail the run; fuzz/Cargo.lock is updated with it (and committed).
cargo afl build --profile "$profile" --quiet --manifest-path fuzz/Cargo.toml

# No UI, no CPU pinning (other builds share the machine), and none of the system settings AFL
# asks root to change (CPU frequency governor, core dump handler): their checks are skipped.
export AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
# Fast calibration; a seed that crashes stops the run (it is not skipped).
export AFL_FAST_CAL=1

failed=0
for t in "${targets[@]}"; do
  out=$CARGO_TARGET_DIR/afl/$profile-$t
  bin=$CARGO_TARGET_DIR/$profile/$t
  rm -rf "$out"
  mkdir -p "$out"
  # -V bounds the fuzzing time; "+" lets a slow seed be skipped rather than stop the run.
  if ! cargo afl fuzz -V "$seconds" -t "$timeout_ms+" -i "fuzz/corpus/$t" -o "$out" "$bin" \
    >"$out/afl.log" 2>&1; then
    echo "fuzz $t: afl-fuzz failed; end of its log:" >&2
    tail -n 30 "$out/afl.log" >&2
    failed=1
    continue
  fi
  stats=$out/default/fuzzer_stats
  field() { sed -n "s/^$1 *: //p" "$stats"; }
  echo "fuzz $t: $(field run_time) s, $(field execs_done) execs ($(field execs_per_sec)/s)," \
    "cycles $(field cycles_done), corpus $(field corpus_count), edges $(field edges_found)/$(field total_edges)" \
    "($(field bitmap_cvg)), stability $(field stability), crashes $(field saved_crashes), hangs $(field saved_hangs)"
  for kind in crashes hangs; do
    for f in "$out/default/$kind"/id:*; do
      [ -e "$f" ] || continue
      failed=1
      echo "fuzz $t: $kind input $f; replayed:" >&2
      timeout 10 "$bin" <"$f" 2>&1 | tail -n 15 >&2 || true
    done
  done
done
exit "$failed"
