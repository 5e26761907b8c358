#!/usr/bin/env bash
# Regenerate the hash-pinned lock files from pyproject.toml (run after changing dependencies):
#   requirements.lock      runtime dependencies: what the Docker image installs
#   requirements-dev.lock  runtime + the dev extra: what scripts/setup.sh installs
# pip-compile (pip-tools) runs in its own venv (.venv-lock/) and uses pip's configuration as it is
# (index, extra indexes, find-links, e.g. /etc/pip.conf), so it works wherever `pip install` works.
# Each file records the sha256 of pyproject's dependency lists; setup.sh compares it to know
# whether the lock is stale.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=.venv-lock
if [ ! -x "$tools/bin/pip-compile" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q "pip-tools>=7.4"
fi
stamp=$(python3 scripts/deps_digest.py)
compile() {  # output file, extra args…
  local out=$1; shift
  "$tools/bin/pip-compile" --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
    --no-emit-find-links --no-emit-trusted-host --no-header "$@" -o "$out.tmp" pyproject.toml
  { echo "# hash-pinned lock of pyproject.toml; regenerate with scripts/lock.sh"
    echo "# pyproject-dependencies-sha256: $stamp"
    cat "$out.tmp"; } > "$out"
  rm -f "$out.tmp"
  echo "lock: wrote $out ($(grep -c '==' "$out") pins)"
}
compile requirements.lock
compile requirements-dev.lock --extra dev
