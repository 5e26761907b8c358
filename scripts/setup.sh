#!/usr/bin/env bash
# One idempotent setup step for a fresh machine: the venv at .venv/ and the Debian server
# packages the tests run for real (redis-server, redis-sentinel, prometheus, rabbitmq-server,
# nats-server, mariadb-server, postgresql, wrk for HTTP load, chromium to render the HTML reports).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# binary:Debian-package pairs; the binary's absence is what triggers the install.
for pair in redis-server:redis-server redis-sentinel:redis-sentinel prometheus:prometheus \
            promtool:prometheus rabbitmq-server:rabbitmq-server nats-server:nats-server \
            mariadbd:mariadb-server pg_ctlcluster:postgresql wrk:wrk chromium:chromium; do
  bin=${pair%%:*} pkg=${pair#*:}
  if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/bin/$bin" ] && [ ! -x "/usr/sbin/$bin" ]; then
    [[ " ${need[*]} " == *" $pkg "* ]] || need+=("$pkg")
  fi
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

stamp=.venv/.surge-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements-dev.lock -nt "$stamp" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  # the hash-pinned lock (scripts/lock.sh) when it matches pyproject's dependencies; otherwise say so
  # loudly and resolve pyproject's ranges instead, so a dependency added since the last lock works
  want=$(python3 scripts/deps_digest.py)
  have=$(sed -n 's/^# pyproject-dependencies-sha256: //p' requirements-dev.lock 2>/dev/null | head -1)
  if [ -n "$have" ] && [ "$want" = "$have" ]; then
    .venv/bin/pip install -q --require-hashes -r requirements-dev.lock
    .venv/bin/pip install -q --no-deps -e .
  else
    echo "setup: WARNING: requirements-dev.lock is missing or stale (pyproject.toml's dependencies changed);" >&2
    echo "setup: WARNING: installing from pyproject's version ranges, NOT hash-checked. Run scripts/lock.sh." >&2
    .venv/bin/pip install -q -e '.[dev]'
  fi
  touch "$stamp"
fi
