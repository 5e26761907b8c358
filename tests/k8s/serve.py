"""Run the API emulator as its own process, optionally filled with ScaledObjects for a benchmark.

    python -m tests.k8s.serve --port 8001 [--scaledobjects N --redis HOST:PORT --polling 1]

Each of the N ScaledObjects scales its own Deployment on the Redis list `q<i>`.
"""

from __future__ import annotations

import argparse

from aiohttp import web

from tests.k8s.emulator import Emulator


def fill(em: Emulator, n: int, redis: str, polling: int, namespace: str = "bench") -> None:
    for i in range(n):
        name = f"w{i}"
        em.put("apps/v1", "deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                     "template": {"spec": {"containers": [{"name": "c", "image": "c"}]}}}})
        em.put("keda.sh/v1alpha1", "scaledobjects", {
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"scaleTargetRef": {"name": name}, "pollingInterval": polling, "cooldownPeriod": 30,
                     "maxReplicaCount": 50,
                     "triggers": [{"type": "redis", "name": "q", "metadata": {
                         "address": redis, "listName": f"q{i}", "listLength": "10"}}]}})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--scaledobjects", type=int, default=0)
    parser.add_argument("--redis", default="127.0.0.1:6379")
    parser.add_argument("--polling", type=int, default=1)
    args = parser.parse_args()
    em = Emulator()
    fill(em, args.scaledobjects, args.redis, args.polling)
    web.run_app(em.app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
