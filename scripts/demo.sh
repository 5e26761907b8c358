#!/usr/bin/env bash
# The demo (until the simulator lands): validate the example manifests, then read their triggers
# once against a real redis-server that this script starts and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

echo "== surge validate examples/"
.venv/bin/surge validate examples/

work=$(mktemp -d)
port=$($PY -c "from tests.servers import free_port; print(free_port())")
redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
  --dir "$work" --pidfile "$work/redis.pid" --logfile "$work/redis.log"
cleanup() { [ -f "$work/redis.pid" ] && kill "$(cat "$work/redis.pid")" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

echo
echo "== 42 image jobs arrive on redis 127.0.0.1:$port (list jobs:images)"
redis-cli -p "$port" RPUSH jobs:images $(seq 1 42) >/dev/null
echo "== surge read examples/redis-queue.yaml --current 0   (the worker is scaled to zero)"
.venv/bin/surge read examples/redis-queue.yaml --env "REDIS_ADDRESS=127.0.0.1:$port" --current 0
echo
echo "== a minute later the workload runs 1 replica; what next?"
.venv/bin/surge read examples/redis-queue.yaml --env "REDIS_ADDRESS=127.0.0.1:$port" --current 1 | tail -n 1

echo
echo "== surge plan examples/pods.yaml --nodepool examples/nodepools.yaml   (nodes for the pending pods)"
.venv/bin/surge plan examples/pods.yaml --nodepool examples/nodepools.yaml
echo "== the same pods with the Karpenter-style packer"
.venv/bin/surge plan examples/pods.yaml --nodepool examples/nodepools.yaml --algorithm karpenter | tail -n 1
