#!/usr/bin/env bash
# The README's main job. A short live part first (validate the examples, read a real Redis
# trigger and decide, plan nodes), then the simulation: the bundled workload (a real 14-day
# LLM-serving trace, a KEDA ScaledObject with KEDA's defaults, a Karpenter NodePool) under three
# policies, ending with the cost/SLO report side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
out=${SURGE_DEMO_OUT:-out/demo}

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
echo "== 42 image jobs arrive on redis 127.0.0.1:$port; surge read examples/redis-queue.yaml --current 0"
redis-cli -p "$port" RPUSH jobs:images $(seq 1 42) >/dev/null
.venv/bin/surge read examples/redis-queue.yaml --env "REDIS_ADDRESS=127.0.0.1:$port" --current 0
echo
echo "== surge plan examples/pods.yaml --nodepool examples/nodepools.yaml"
.venv/bin/surge plan examples/pods.yaml --nodepool examples/nodepools.yaml | tail -n 3
echo
echo "== surge simulate --report $out   (bundled 14-day trace, ScaledObject and NodePool: autoscaler/data/)"
.venv/bin/surge simulate --report "$out"
echo "The full report with plots: $out/report.html (also report.json, report.csv)"
