#!/usr/bin/env bash
# Defines ensure_unleash: starts the open-source Unleash server (npm package unleash-server)
# on 127.0.0.1:4242 for the integration tests of crates/feature-unleash, when it is not already
# answering there. The package is installed once into target/unleash-server (reused later);
# the server keeps its data in the PostgreSQL database unleash_test, which is created when
# missing. Source this file, then call ensure_unleash; running it directly does the same.
#
# Fixed tokens (loopback-only test server):
#   admin API:  *:*.unleash-insecure-api-token
#   client API: default:development.unleash-insecure-client-token

UNLEASH_SERVER_VERSION=${UNLEASH_SERVER_VERSION:-7.5.1}
UNLEASH_PORT=${UNLEASH_PORT:-4242}
UNLEASH_DB=${UNLEASH_DB:-unleash_test}
# The password is the one scripts/services.sh gives the postgres user; with trust
# authentication it is ignored.
UNLEASH_PG_PASSWORD=${UNLEASH_PG_PASSWORD:-postgres}
UNLEASH_ADMIN_TOKEN='*:*.unleash-insecure-api-token'
UNLEASH_CLIENT_TOKEN='default:development.unleash-insecure-client-token'

_unleash_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

_unleash_healthy() {
  curl -fsS --max-time 2 "http://127.0.0.1:$UNLEASH_PORT/health" >/dev/null 2>&1
}

ensure_unleash() {
  local root dir log
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if _unleash_port_open "$UNLEASH_PORT"; then
    export FEATURE_TEST_UNLEASH_URL=${FEATURE_TEST_UNLEASH_URL:-http://127.0.0.1:$UNLEASH_PORT/api}
    return 0
  fi
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "error: Unleash needs node and npm (Node 20 or later)" >&2
    return 1
  fi
  if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    echo "error: unleash-server $UNLEASH_SERVER_VERSION needs Node 20 or later, found $(node -v)" >&2
    return 1
  fi
  if ! command -v psql >/dev/null 2>&1; then
    echo "error: Unleash's database is created with psql, which is missing" >&2
    return 1
  fi
  if ! _unleash_port_open 5432; then
    echo "error: Unleash needs PostgreSQL on 127.0.0.1:5432" >&2
    return 1
  fi
  dir="$root/target/unleash-server"
  if [ ! -f "$dir/node_modules/unleash-server/package.json" ] ||
    ! grep -q "\"version\": \"$UNLEASH_SERVER_VERSION\"" "$dir/node_modules/unleash-server/package.json"; then
    echo "installing unleash-server $UNLEASH_SERVER_VERSION into target/unleash-server" >&2
    mkdir -p "$dir"
    [ -f "$dir/package.json" ] || printf '{"name":"unleash-test-server","private":true}\n' >"$dir/package.json"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error \
      "unleash-server@$UNLEASH_SERVER_VERSION" >/dev/null) || {
      echo "error: npm install of unleash-server failed" >&2
      return 1
    }
  fi
  if ! PGPASSWORD=$UNLEASH_PG_PASSWORD psql -h 127.0.0.1 -U postgres -d postgres -qtAc \
    "SELECT 1 FROM pg_database WHERE datname='$UNLEASH_DB'" 2>/dev/null | grep -q 1; then
    PGPASSWORD=$UNLEASH_PG_PASSWORD psql -h 127.0.0.1 -U postgres -d postgres -qc \
      "CREATE DATABASE $UNLEASH_DB" >/dev/null || {
      echo "error: cannot create database $UNLEASH_DB" >&2
      return 1
    }
  fi
  echo "starting Unleash on 127.0.0.1:$UNLEASH_PORT" >&2
  log="$dir/server.log"
  # Detached: its own session (it outlives the shell that started it, as the other test
  # services do) and no inherited descriptors (a caller reading this script's output is not
  # kept waiting for the server to exit).
  local detach=()
  command -v setsid >/dev/null 2>&1 && detach=(setsid)
  (
    cd "$dir" || exit 1
    export NODE_PATH="$dir/node_modules" \
      DATABASE_URL="postgres://postgres:$UNLEASH_PG_PASSWORD@127.0.0.1:5432/$UNLEASH_DB" \
      DATABASE_SSL=false \
      CHECK_VERSION=false \
      SEND_TELEMETRY=false \
      HTTP_HOST=127.0.0.1 \
      HTTP_PORT="$UNLEASH_PORT" \
      INIT_ADMIN_API_TOKENS="$UNLEASH_ADMIN_TOKEN" \
      INIT_CLIENT_API_TOKENS="$UNLEASH_CLIENT_TOKEN"
    exec "${detach[@]}" nohup node "$root/scripts/unleash-server.js"
  ) >"$log" 2>&1 </dev/null &
  # The first start runs the database migrations, which takes a while.
  for _ in $(seq 1 240); do
    if _unleash_healthy; then
      export FEATURE_TEST_UNLEASH_URL=${FEATURE_TEST_UNLEASH_URL:-http://127.0.0.1:$UNLEASH_PORT/api}
      return 0
    fi
    sleep 0.5
  done
  echo "error: Unleash did not come up on 127.0.0.1:$UNLEASH_PORT; last lines of $log:" >&2
  tail -n 20 "$log" >&2
  return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  ensure_unleash
fi
