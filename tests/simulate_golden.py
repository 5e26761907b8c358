"""Golden results of the simulator: what `simulate()` returned for a few traces and policies, so a
change meant only to make the simulator faster can prove it changed nothing (tests/test_simulate_golden.py).

The cases cover the paths the hot loop takes: the bundled Kafka workload on spot + on-demand over three
days (the predictive forecaster fits after two), every policy kind and several surge ablations, a
synthetic 1-min trace with nights at zero load and a gap (scale to zero, idle stretches, gap accounting),
spot interruptions at a high rate and scenario notices, an HTTP workload (drops past the timeout) on
an excerpt of a real trace, and an hourly trace interpolated to the 5 s tick.

Each result is `PolicyResult.to_json()` plus a digest of its recorded series and of its nodes' lives,
so a change in any decision, at any time, shows.

Regenerate ONLY when the simulator's semantics change on purpose (a decision, a constant, the model —
never to make a speed-up pass), and say so in the commit:

    .venv/bin/python -m tests.simulate_golden
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from autoscaler.simulate.inputs import build_setup, bundled
from autoscaler.simulate.policy import Assumptions, policy_named
from autoscaler.simulate.run import PolicyResult, Setup, scale_for, simulate
from autoscaler.simulate.trace import Trace, load_trace

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "simulate_golden.json"

# The HTTP case's manifests (JSON is YAML): a Prometheus-rate ScaledObject, its Deployment, and a
# spot-or-on-demand NodePool that consolidates only empty nodes
HTTP_SO = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "web"},
           "spec": {"scaleTargetRef": {"name": "web"}, "minReplicaCount": 1, "maxReplicaCount": 40,
                    "triggers": [{"type": "prometheus", "metadata": {
                        "serverAddress": "http://p:9090", "query": "sum(rate(http_requests_total[1m]))",
                        "threshold": "10"}}]}}
WEB_DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                      {"name": "w", "image": "w", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]}}}}
WHEN_EMPTY_POOL = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "default"},
                   "spec": {"template": {"spec": {"requirements": [
                       {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m"]},
                       {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["5"]},
                       {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                       {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]}]}},
                       "limits": {"cpu": "1000"},
                       "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "30s"}}}


def nights_at_zero() -> Trace:
    """Two days of 1-min rows: a daytime hump, zero load at night, and a 90-minute gap."""
    minutes = np.arange(2 * 1440)
    hour = (minutes % 1440) / 60
    counts = np.where((hour > 7) & (hour < 21), 600 * np.sin((hour - 7) / 14 * np.pi) ** 2, 0.0)
    counts = np.round(counts + 40 * np.sin(minutes / 7.0) ** 2 * (counts > 0))
    counts[1500:1590] = np.nan
    return Trace("nights-at-zero", 0.0, 60.0, counts)


def _hourly() -> Trace:
    t = load_trace(bundled("servegen_m-small_10min.csv"))
    hours = t.counts[: len(t.counts) // 6 * 6].reshape(-1, 6).sum(axis=1)
    return Trace("servegen summed to 1 h", t.start, 3600.0, hours[: 4 * 24])


def _files(tmp: Path, **docs: dict[str, Any]) -> dict[str, Path]:
    out = {}
    for name, doc in docs.items():
        out[name] = tmp / f"{name}.yaml"
        out[name].write_text(json.dumps(doc))
    return out


Case = tuple[str, Trace, Setup, Assumptions, list[str], tuple[float, ...]]


def cases(tmp: Path) -> list[Case]:
    """(case, trace, setup, assumptions, policies, notice times)."""
    out: list[Case] = []
    servegen = load_trace(bundled("servegen_m-small_10min.csv")).head(3 * 86400)[0]
    a = Assumptions()
    a = replace(a, scale=scale_for(servegen, a))
    setup, _ = build_setup(assumptions=a)
    out.append(("servegen-3d", servegen, setup, a,
                ["static-peak", "static-peak-on-demand", "keda-karpenter", "surge", "surge-no-events",
                 "surge-no-packer", "surge-no-together", "surge-no-deletion-cost"], ()))

    nights = nights_at_zero()
    a = replace(Assumptions(spot_interruptions_per_node_hour=0.05, seed=7), scale=scale_for(nights, Assumptions()))
    setup, _ = build_setup(assumptions=a)
    out.append(("nights-at-zero", nights, setup, a,
                ["static-peak", "keda-karpenter", "surge", "surge-no-events", "surge-no-spot"], (30000.0, 100000.0)))

    paths = _files(tmp, so=HTTP_SO, dep=WEB_DEPLOYMENT, np=WHEN_EMPTY_POOL)
    elb = load_trace(ROOT / "tests" / "data" / "traces" / "nab_elb_5min_excerpt.csv")
    a = Assumptions(http_timeout_s=20.0)
    a = replace(a, scale=scale_for(elb, a) * 1.5)
    setup, _ = build_setup(paths["so"], [paths["np"]], paths["dep"], a)
    out.append(("http-elb-when-empty", elb, setup, a, ["static-peak", "keda-karpenter", "surge"], ()))

    hourly = _hourly()
    a = Assumptions()
    a = replace(a, scale=scale_for(hourly, a))
    setup, _ = build_setup(assumptions=a)
    out.append(("hourly-4d", hourly, setup, a, ["keda-karpenter", "surge"], ()))
    return out


def _digest(values: Any) -> str:
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()[:16]


def fingerprint(r: PolicyResult) -> dict[str, Any]:
    """to_json(), and digests of the series and of every node's life (rounded to µs / 1e-9)."""
    s = r.series
    series: list[list[float]] = [s.t, s.load, s.replicas, s.ready, s.nodes, s.cost_per_hour, s.backlog]  # type: ignore[list-item]
    series_r = [[None if v != v else round(float(v), 6) for v in col] for col in series]
    nodes = [(n.id, n.instance_type, n.capacity_type, n.zone, round(n.launched_at, 6),
              None if n.terminated_at is None else round(n.terminated_at, 6)) for n in r.nodes]
    return r.to_json() | {"series_points": len(s.t), "series_digest": _digest(series_r),
                          "nodes_digest": _digest(sorted(nodes)), "unplaceable_pods": r.unplaceable_pods}


def compute() -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        results: dict[str, dict[str, Any]] = {}
        for name, trace, setup, a, policies, notices in cases(Path(tmp)):
            results[name] = {p: fingerprint(simulate(trace, setup, policy_named(p), a, notices=notices))
                             for p in policies}
        return results


def main() -> None:
    GOLDEN.write_text(json.dumps(compute(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
