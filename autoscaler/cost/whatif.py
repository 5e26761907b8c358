"""`surge cost --what-if keda-karpenter`: what KEDA + Karpenter would have cost for the same traffic.

For each ScaledObject with recorded trigger readings in Prometheus (keda_scaler_metrics_value,
which the operator exports under KEDA's name), the readings of its first trigger are turned back
into the load that produced them and replayed through the simulator's `keda-karpenter` policy
(autoscaler/simulate, its public `simulate` entry point), beside what the workload actually cost.

How readings become load (stated with every result):
- a rate trigger (prometheus): the reading is the arrival rate;
- a backlog trigger (kafka, redis, SQS, streams): arrivals over a step = the backlog's growth +
  what the ready replicas served, served = replicas × pod_rate × step capped by what was there
  (replicas from kube_deployment_status_replicas_available, else surge_desired_replicas); a step
  that ends with an empty queue gets the least arrivals that explain it (a lower bound);
- the actual SLO is estimated the same way: a step violates it when backlog / (replicas × pod_rate)
  exceeds the SLO (Little's law); rate triggers have no actual wait estimate.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from autoscaler.cost.allocation import CostInputError
from autoscaler.cost.prom import Prometheus
from autoscaler.manifests.reader import ManifestError, read_file

MAX_POINTS = 10_000  # readings per ScaledObject (query_range step chosen so the window fits)


@dataclass(frozen=True)
class Readings:
    namespace: str
    scaled_object: str
    t: np.ndarray
    value: np.ndarray  # NaN where nothing was recorded
    replicas: np.ndarray  # NaN where unknown


def arrivals_from_backlog(backlog: np.ndarray, replicas: np.ndarray, pod_rate: float, step_s: float) -> np.ndarray:
    """Items that arrived in each step so that the backlog went from b[i] to b[i+1] while the
    replicas served min(b[i] + arrivals, replicas × pod_rate × step). Pure; len = len(backlog) − 1.

    Where the queue drained completely, any arrivals up to what the replicas could still serve fit the
    readings; the least (none) is taken, so the replayed load — and the simulated KEDA + Karpenter
    cost — is a lower bound: the comparison never flatters surge.
    """
    capacity = np.nan_to_num(replicas[:-1], nan=0.0) * pod_rate * step_s
    growth = backlog[1:] - backlog[:-1]
    # b1 = b0 + a - min(b0 + a, cap)  →  a = b1 - b0 + cap  when b1 > 0, else 0 ≤ a ≤ cap - b0
    return np.where(backlog[1:] > 0, np.maximum(0.0, growth + capacity), 0.0)


def estimated_wait(backlog: np.ndarray, replicas: np.ndarray, pod_rate: float) -> np.ndarray:
    """Little's law: the time the backlog takes to drain at the replicas' service rate (inf with none)."""
    served = np.nan_to_num(replicas, nan=0.0) * pod_rate
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(backlog > 0, np.where(served > 0, backlog / np.where(served > 0, served, 1), np.inf), 0.0)


def fill_gaps(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Carry the last reading over missing steps (KEDA holds a reading until the next poll); leading
    gaps take the first reading. Returns the values and how many steps were filled."""
    missing = np.isnan(values)
    if missing.all():
        return np.zeros_like(values), int(missing.sum())
    idx = np.where(~missing, np.arange(len(values)), 0)
    np.maximum.accumulate(idx, out=idx)
    out = values[idx]
    first = int(np.argmax(~missing))
    out[:first] = values[first]
    return out, int(missing.sum())


@dataclass
class WorkloadWhatIf:
    namespace: str
    scaled_object: str
    signal: str
    actual_cost: float  # its pods' allocated cost
    actual_cost_with_idle: float  # + its share of the window's idle
    actual_slo_minutes: float | None
    keda_karpenter: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "scaledObject": self.scaled_object, "signal": self.signal,
                "actual_cost": round(self.actual_cost, 6),
                "actual_cost_with_idle": round(self.actual_cost_with_idle, 6),
                "actual_slo_violation_minutes": self.actual_slo_minutes, "keda_karpenter": self.keda_karpenter,
                "notes": self.notes}


@dataclass
class WhatIf:
    workloads: list[WorkloadWhatIf]
    assumptions: dict[str, Any]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"policy": "keda-karpenter", "assumptions": self.assumptions,
                "workloads": [w.to_json() for w in self.workloads], "notes": self.notes}

    def table(self) -> Any:
        from rich.table import Table

        t = Table(title="what if KEDA + Karpenter had run the same traffic (simulated)")
        for col in ("ScaledObject", "signal", "actual $", "actual $ + idle share", "actual SLO-min",
                    "keda-karpenter $", "keda-karpenter SLO-min", "wait p95 s"):
            t.add_column(col, justify="left" if col in ("ScaledObject", "signal") else "right")
        for w in self.workloads:
            kk = w.keda_karpenter
            t.add_row(f"{w.namespace}/{w.scaled_object}", w.signal, f"{w.actual_cost:,.2f}",
                      f"{w.actual_cost_with_idle:,.2f}",
                      "n/a" if w.actual_slo_minutes is None else f"{w.actual_slo_minutes:g}",
                      f"{kk.get('cost_usd', 0):,.2f}", str(kk.get("slo_violation_minutes", "")),
                      str(kk.get("wait_p95_s", "")))
        return t

    def html_parts(self) -> list[str]:
        """The comparison table and the stated assumptions, as parts of a report section."""
        from autoscaler.htmlpage import bullets, key_values, table

        rows = [[f"{w.namespace}/{w.scaled_object}", w.signal, f"{w.actual_cost:,.2f}",
                 f"{w.actual_cost_with_idle:,.2f}",
                 "n/a" if w.actual_slo_minutes is None else f"{w.actual_slo_minutes:g}",
                 f"{w.keda_karpenter.get('cost_usd', 0):,.2f}", w.keda_karpenter.get("slo_violation_minutes", ""),
                 w.keda_karpenter.get("wait_p95_s", "")] for w in self.workloads]
        return [table(["ScaledObject", "signal", "actual $", "actual $ + idle share", "actual SLO-min",
                       "keda-karpenter $", "keda-karpenter SLO-min", "wait p95 s"], rows, numeric={2, 3, 4, 5, 6, 7},
                      css="whatif"),
                bullets([*self.notes, *(f"{w.namespace}/{w.scaled_object}: {n}" for w in self.workloads
                                        for n in w.notes)]),
                "<h3>Assumptions (stated, not measured)</h3>" + key_values(self.assumptions)]


def read_readings(prom: Prometheus, start: float, end: float, step_s: float) -> list[Readings]:
    """First-trigger readings and available replicas of every ScaledObject over the window."""
    values = prom.query_range('max by (namespace, scaledObject) (keda_scaler_metrics_value{triggerIndex="0"})',
                              start, end - step_s, step_s)
    info = prom.query(f"last_over_time(surge_scaledobject_target_info[{round(end - start)}s])", end - 0.001)
    targets = {(m.get("namespace", ""), m.get("scaledObject", "")): (m.get("scaleTargetKind", ""),
                                                                     m.get("scaleTargetName", "")) for m, _ in info}
    available = {(m.get("namespace", ""), m.get("deployment", "")): pts for m, pts in prom.query_range(
        "max by (namespace, deployment) (kube_deployment_status_replicas_available)", start, end - step_s, step_s)}
    desired = {(m.get("namespace", ""), m.get("scaledObject", "")): pts for m, pts in prom.query_range(
        "max by (namespace, scaledObject) (surge_desired_replicas)", start, end - step_s, step_s)}
    n = round((end - start) / step_s)
    grid = start + np.arange(n) * step_s
    out = []
    for m, pts in values:
        key = (m.get("namespace", ""), m.get("scaledObject", ""))
        kind, name = targets.get(key, ("Deployment", key[1]))
        reps = available.get((key[0], name)) if kind in ("", "Deployment") else None
        out.append(Readings(key[0], key[1], grid, _on_grid(pts, start, step_s, n),
                            _on_grid(reps if reps is not None else desired.get(key, []), start, step_s, n)))
    return out


def _on_grid(points: Sequence[tuple[float, float]], start: float, step_s: float, n: int) -> np.ndarray:
    out = np.full(n, np.nan)
    for t, v in points:
        i = round((t - start) / step_s)
        if 0 <= i < n:
            out[i] = v
    return out


def _manifests(paths: Sequence[Path], namespace: str, name: str, workdir: Path) -> tuple[Path | None, list[Path],
                                                                                        Path | None]:
    """The ScaledObject named `name` (in `namespace` or without one) from the files, written alone to a
    file of its own (the simulator reads the first ScaledObject of a file), with the files holding
    NodePools and the file holding it (for its Deployment)."""
    found, pools = None, []
    for p in paths:
        try:
            docs = [d for d in read_file(p) if isinstance(d, dict)]
        except ManifestError as exc:
            raise CostInputError(f"--scaledobject {exc}") from None
        if any(d.get("kind") == "NodePool" for d in docs):
            pools.append(p)
        for d in docs:
            meta = d.get("metadata") or {}
            if d.get("kind") == "ScaledObject" and meta.get("name") == name \
                    and meta.get("namespace", namespace) == namespace and found is None:
                one = workdir / f"{namespace}-{name}.yaml"
                one.write_text(yaml.safe_dump(d))
                found = (one, p)
    return (found[0], pools, found[1]) if found else (None, pools, None)


def what_if_keda_karpenter(prom: Prometheus, run: Any, manifests: Sequence[Path],
                           progress: Callable[[int, int], None] | None = None, pod_rate: float = 10.0,
                           slo_s: float = 60.0) -> WhatIf:
    """Replay each ScaledObject's readings through the simulator's keda-karpenter policy."""
    from autoscaler.simulate.inputs import InputError, build_setup
    from autoscaler.simulate.policy import Assumptions, policy_named
    from autoscaler.simulate.run import simulate
    from autoscaler.simulate.trace import Trace

    a_start, a_end = run.allocation.start, run.allocation.end
    step_s = max(run.meta["step_s"], 60.0, math.ceil((a_end - a_start) / MAX_POINTS / 60) * 60.0)
    readings = read_readings(prom, a_start, a_end, step_s)
    a = Assumptions(pod_rate=pod_rate, slo_seconds=slo_s, scale=1.0)
    policy = policy_named("keda-karpenter")
    alloc = run.allocation
    idle_factor = (alloc.total / alloc.allocated) if alloc.allocated > 0 else 1.0
    by_so = _actual_by_scaled_object(run)
    notes = ["actual cost: the ScaledObject's pods' allocated cost (requests/usage × node unit prices); "
             "'+ idle share' spreads the window's idle cost in proportion to allocation",
             "simulated cost: whole nodes the keda-karpenter policy would have run for this workload alone, "
             f"spot modelled as on-demand × {1 - a.spot_discount:.2f} (the simulator's assumption)",
             f"readings: first trigger (triggerIndex 0) every {step_s:g} s; gaps carry the last reading; "
             f"one pod serves {pod_rate:g} items/s (--pod-rate); backlog readings give a lower bound of the load"]
    out: list[WorkloadWhatIf] = []
    with tempfile.TemporaryDirectory(prefix="surge-whatif-") as tmp:
        for i, r in enumerate(readings):
            item_notes: list[str] = []
            so_path, pools, source = _manifests(manifests, r.namespace, r.scaled_object, Path(tmp))
            if so_path is None:
                item_notes.append(f"no ScaledObject {r.namespace}/{r.scaled_object} in --scaledobject files: the "
                                  "bundled sample ScaledObject, Deployment and NodePool were simulated")
            try:
                setup, setup_notes = build_setup(so_path, pools, source, a)
            except InputError as exc:
                raise CostInputError(f"--scaledobject: {exc}") from None
            item_notes += setup_notes
            signal = next((t.signal for t in setup.triggers if t.signal != "none"), "none")
            values, filled = fill_gaps(r.value)
            if filled:
                item_notes.append(f"{filled} of {len(values)} steps had no reading (carried over)")
            replicas, _ = fill_gaps(r.replicas)
            if np.isnan(r.replicas).all():
                item_notes.append("no replica history (kube_deployment_status_replicas_available or "
                                  "surge_desired_replicas): served work and actual SLO cannot be estimated")
            actual_slo: float | None = None
            if signal == "rate":
                rates = values
            else:
                arrivals = arrivals_from_backlog(values, replicas, pod_rate, step_s)
                rates = np.append(arrivals, arrivals[-1] if len(arrivals) else 0.0) / step_s
                if not np.isnan(r.replicas).all():
                    actual_slo = float(np.count_nonzero(estimated_wait(values, replicas, pod_rate) > slo_s)) \
                        * step_s / 60
            trace = Trace(f"{r.namespace}/{r.scaled_object}", a_start, step_s, rates * step_s)
            result = simulate(trace, setup, policy, replace(a, tick_s=min(a.tick_s, step_s)))
            actual = by_so.get(f"{r.namespace}/{r.scaled_object}", 0.0)
            out.append(WorkloadWhatIf(r.namespace, r.scaled_object, signal, actual, actual * idle_factor, actual_slo,
                                      result.summary(), item_notes))
            if progress is not None:
                progress(i + 1, len(readings))
    if not readings:
        notes.append("no keda_scaler_metrics_value series in the window: nothing to replay")
    return WhatIf(out, {**a.to_json(), "readings_step_s": step_s}, notes)


def _actual_by_scaled_object(run: Any) -> dict[str, float]:
    """Allocated cost per namespace/ScaledObject, whatever grouping the run used."""
    return dict(run.allocation.scaled_objects)
