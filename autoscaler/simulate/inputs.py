"""From the user's files (or the bundled defaults) to a simulation `Setup`, with clear errors."""

from __future__ import annotations

import importlib.resources as ir
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from autoscaler.engine.spec import scaling_spec
from autoscaler.manifests.keda import ScaledObject
from autoscaler.manifests.reader import ManifestError, read_file
from autoscaler.simulate.policy import Assumptions
from autoscaler.simulate.run import Setup
from autoscaler.simulate.signals import SIGNALS, sim_triggers
from provisioner.catalog import load_catalog
from provisioner.nodepool import NodePool
from provisioner.pods import daemonset_overhead, group_from_pod_spec

DEFAULT_TRACE = "servegen_m-small_10min.csv"


class InputError(ValueError):
    """A file the simulation was given cannot be used; the message names the object and field."""


def bundled(name: str) -> Path:
    return Path(str(ir.files("autoscaler").joinpath("data", name)))


def _docs(path: Path) -> list[dict[str, Any]]:
    try:
        return [d for d in read_file(path) if isinstance(d, dict)]
    except ManifestError as exc:
        raise InputError(str(exc)) from None


def _field_errors(kind: str, name: str, exc: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    return f"{kind}/{name}: " + "; ".join(parts)


def load_scaled_object(path: Path) -> ScaledObject:
    docs = [d for d in _docs(path) if d.get("kind") == "ScaledObject"]
    if not docs:
        raise InputError(f"{path}: no ScaledObject in this file")
    raw = docs[0]
    try:
        return ScaledObject.model_validate(raw)
    except ValidationError as exc:
        name = str((raw.get("metadata") or {}).get("name", "?"))
        raise InputError(f"{path}: " + _field_errors("ScaledObject", name, exc)) from None


def load_nodepools(paths: Sequence[Path]) -> list[NodePool]:
    pools = []
    for path in paths:
        for raw in _docs(path):
            if raw.get("kind") != "NodePool":
                continue
            try:
                pools.append(NodePool.model_validate(raw))
            except ValidationError as exc:
                name = str((raw.get("metadata") or {}).get("name", "?"))
                raise InputError(f"{path}: " + _field_errors("NodePool", name, exc)) from None
    if not pools:
        raise InputError(f"{', '.join(map(str, paths))}: no NodePool in these files")
    return pools


def build_setup(
    scaled_object: Path | None = None,
    nodepools: Sequence[Path] = (),
    deployment: Path | None = None,
    assumptions: Assumptions | None = None,
) -> tuple[Setup, list[str]]:
    """The simulated workload. Returns notes on everything that was assumed or not simulated."""
    a = assumptions or Assumptions()
    notes: list[str] = []
    path = scaled_object or bundled("sim-scaledobject.yaml")
    http = next((d for d in _docs(path) if d.get("kind") == "HTTPScaledObject"), None)
    if http is not None:  # the KEDA HTTP add-on's kind: the interceptor's semantics (simulate/http.py)
        from autoscaler.simulate.http import HTTPInputError, http_workload

        try:
            so, http_triggers, route, http_notes = http_workload(http)
        except HTTPInputError as exc:
            raise InputError(f"{path}: {exc}") from None
        notes += http_notes
    else:
        so = load_scaled_object(path)
    pools = load_nodepools(list(nodepools) or [bundled("sim-nodepool.yaml")])
    for pool in pools:
        notes += [f"NodePool {pool.name}: {f} is not simulated" for f in pool.unsupported_fields()
                  if not f.startswith("spec.disruption")]
    docs = _docs(deployment or bundled("sim-deployment.yaml"))
    target = so.spec.scale_target_ref.name
    workloads = [d for d in docs if d.get("kind") in ("Deployment", "StatefulSet")]
    chosen = next((d for d in workloads if (d.get("metadata") or {}).get("name") == target), None)
    if chosen is None and workloads:
        chosen = workloads[0]
        notes.append(f"no Deployment named {target!r} (the ScaledObject's scaleTargetRef); "
                     f"using {(chosen.get('metadata') or {}).get('name')!r}")
    if chosen is None:
        raise InputError(f"{deployment}: no Deployment or StatefulSet for ScaledObject/{so.metadata.name} "
                         f"(scaleTargetRef.name {target!r})")
    template = ((chosen.get("spec") or {}).get("template") or {})
    pods = group_from_pod_spec(target, 1, template.get("spec") or {}, (template.get("metadata") or {}).get("labels")
                               or {})
    triggers = http_triggers if http is not None else sim_triggers(so)
    notes += [t.note for t in triggers if t.note]
    notes += [f"trigger {t.key} ({t.type}) targets {t.target:g}/s per replica but one pod completes "
              f"{a.pod_rate:g}/s (--pod-rate): the HPA asks for about {a.pod_rate / t.target:.2g}× the pods the "
              "load needs, so work waits at any load; give --pod-rate what one pod really serves"
              for t in triggers if t.signal == "rate" and t.target > a.pod_rate * 1.5]
    if all(t.signal == "none" for t in triggers):
        why = "; ".join(t.note for t in triggers if t.note)  # a simulated type can still fail its own parser
        raise InputError(f"{path}: ScaledObject/{so.metadata.name}: spec.triggers: no trigger can be simulated "
                         f"({why}); expected at least one valid trigger of type {', '.join(SIGNALS)}")
    if all(t.signal in ("schedule", "none") for t in triggers):
        notes.append(f"ScaledObject/{so.metadata.name}: its only simulated triggers are cron: replicas follow the "
                     "schedule, not the trace's load")
    spec = scaling_spec(so, {t.key: t.target for t in triggers})
    on_demand = load_catalog()
    spot_prices = {(t.name, o.zone): round(o.price * (1 - a.spot_discount), 6)
                   for t in on_demand for o in t.offerings}
    first = next(t for t in triggers if t.signal != "none")
    setup = Setup(
        spec=spec, triggers=tuple(triggers), pods=pods, pools=tuple(pools),
        catalog_spot=tuple(load_catalog(spot_prices=spot_prices)), catalog_on_demand=tuple(on_demand),
        overhead=daemonset_overhead(docs), http=first.type == "prometheus" or http is not None,
        polling_interval_s=float(so.spec.polling_interval),
        do_not_disrupt=((template.get("metadata") or {}).get("annotations") or {}).get(
            "karpenter.sh/do-not-disrupt") == "true",
    )
    _check_placeable(setup, (chosen.get("metadata") or {}).get("name") or target)
    if http is not None:
        from autoscaler.simulate.http import ADDON_ACTIVATION_S

        setup = replace(setup, polling_interval_s=ADDON_ACTIVATION_S, http_timeout_s=route.readiness_s)
    return setup, notes


def _check_placeable(setup: Setup, workload: str) -> None:
    """A pod that no NodePool can ever hold (an untolerated taint, requirements or requests no
    instance type meets, limits below one node) makes every policy cost nothing and serve nothing:
    say why up front instead of reporting it as a slow scale-out."""
    from provisioner.plan import make_plan

    one = replace(setup.pods, count=1, pod_names=())
    plan = make_plan([one], setup.pools, [*setup.catalog_on_demand, *setup.catalog_spot], (), setup.overhead)
    if plan.unschedulable:
        raise InputError(f"Deployment/{workload}: its pods fit no NodePool ({plan.unschedulable[0]['reason']}); "
                         "nothing could run")


def with_scale(a: Assumptions, scale: float) -> Assumptions:
    return replace(a, scale=scale)
