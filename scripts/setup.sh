#!/usr/bin/env bash
# One idempotent setup step for a fresh machine: the venv at .venv/ and the Debian server
# packages the tests run for real (redis-server, redis-sentinel, prometheus).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for bin in redis-server redis-sentinel prometheus; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/bin/$bin" ] || need+=("$bin")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

stamp=.venv/.surge-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi
