#!/usr/bin/env bash
# OFREP and SDK-stream figures of `featurectl serve` (BENCHMARKS.md, "Flag server: OFREP and
# fan-out"): wrk on single-flag OFREP evaluation beside GET /health in the same run, then the
# SDK stream's fan-out to N connections (scripts/bench-fanout.py). Installs wrk when missing.
# PROFILE=release (default) or debug; SECONDS_EACH (10), CONNECTIONS (32), STREAMS (1000).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/services.sh
command -v wrk >/dev/null 2>&1 || apt_install wrk
PROFILE=${PROFILE:-release}
SECONDS_EACH=${SECONDS_EACH:-10}
CONNECTIONS=${CONNECTIONS:-32}
STREAMS=${STREAMS:-1000}
target=${CARGO_TARGET_DIR:-target}
if [ "$PROFILE" = release ]; then cargo build -q --release -p featurectl; else cargo build -q -p featurectl; fi
bin=$target/$PROFILE/featurectl
work=$(mktemp -d)
token=bench-admin-token-0123456789
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
ulimit -n 65536 2>/dev/null || true

FEATURE_SERVER_ADMIN_TOKEN=$token "$bin" serve --listen 127.0.0.1:18181 \
  --file crates/feature-server/tests/ofrep/flags.yaml 2>/dev/null &
pids+=($!)
wait_port 18181 "featurectl serve"
cat >"$work/ofrep.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"context": {"targetingKey": "u-2", "plan": "pro"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
echo "== OFREP single flag (POST /ofrep/v1/evaluate/flags/theme, $PROFILE build)"
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency -s "$work/ofrep.lua" \
  http://127.0.0.1:18181/ofrep/v1/evaluate/flags/theme | grep -E "Requests/sec|^ +(50|99)%|Non-2xx"
echo "== peer: GET /health"
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency http://127.0.0.1:18181/health \
  | grep -E "Requests/sec|^ +(50|99)%|Non-2xx"

FEATURE_SERVER_ADMIN_TOKEN=$token "$bin" serve --listen 127.0.0.1:18182 \
  --store "sqlite://$work/flags.db" 2>/dev/null &
pids+=($!)
wait_port 18182 "featurectl serve"
curl -s -o /dev/null -X PUT -H "Authorization: Bearer $token" -H 'If-None-Match: *' \
  -H 'Content-Type: application/json' -d '{"default": 0}' http://127.0.0.1:18182/api/v1/flags/fanout
echo "== fan-out: a write through the admin API to $STREAMS SDK streams (SQLite store)"
python3 scripts/bench-fanout.py 127.0.0.1:18182 "$token" "$STREAMS"
