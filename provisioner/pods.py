"""Pending pods as the packer sees them, read from Pod, Deployment (and other controller) manifests.

Identical pods (same namespace, labels and scheduling-relevant spec) form one `PodGroup`, whether
they come from one Deployment, from 1,000 raw Pod manifests or from a `kind: List`: packing counts
instead of individual pods is what makes large problems fast.

Requests are the ones Kubernetes computes (`resourcehelper.PodRequests`): per resource, the larger
of (sum of app containers + restartable sidecars) and (each init container + the sidecars started
before it), plus `spec.overhead`; a container with a limit and no request requests its limit.
Every field read is validated; a bad one raises `PodSpecError` naming the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from provisioner.requirements import Requirements, Toleration, value_set
from provisioner.resources import QuantityError, Resources, amount

ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"
CAPACITY_TYPE = "karpenter.sh/capacity-type"
CONTROLLERS = {"Deployment": "replicas", "StatefulSet": "replicas", "ReplicaSet": "replicas",
               "ReplicationController": "replicas", "Job": "parallelism"}
# labels every pod of a controller carries with a different value: not part of the pod's shape
PER_POD_LABELS = ("statefulset.kubernetes.io/pod-name", "apps.kubernetes.io/pod-index")
TOLERATION_OPERATORS = ("Equal", "Exists")
TAINT_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")


class PodSpecError(ValueError):
    """A field of a pod (or pod template) that Kubernetes would reject or surge cannot read."""

    def __init__(self, path: str, message: str) -> None:
        self.path, self.message = path, message
        super().__init__(f"{path}: {message}")


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector; `None` in a term means "matches nothing", `{}` matches all."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    @classmethod
    def parse(cls, doc: Any, path: str) -> LabelSelector:
        if not isinstance(doc, Mapping):
            raise PodSpecError(path, "expected a label selector (matchLabels / matchExpressions)")
        labels = doc.get("matchLabels") or {}
        if not isinstance(labels, Mapping):
            raise PodSpecError(f"{path}.matchLabels", "expected a map of label: value")
        exprs = []
        for i, e in enumerate(doc.get("matchExpressions") or []):
            where = f"{path}.matchExpressions[{i}]"
            if not isinstance(e, Mapping) or "key" not in e:
                raise PodSpecError(where, "expected {key, operator, values}")
            op = str(e.get("operator", ""))
            values = tuple(str(v) for v in e.get("values") or [])
            if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
                raise PodSpecError(f"{where}.operator", f"unknown operator {op!r}, expected In, NotIn, Exists or "
                                                        "DoesNotExist")
            if op in ("In", "NotIn") and not values:
                raise PodSpecError(f"{where}.values", f"{op} needs at least one value")
            exprs.append((str(e["key"]), op, values))
        return cls(tuple(sorted((str(k), str(v)) for k, v in labels.items())), tuple(exprs))

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels):
            return False
        for key, op, values in self.match_expressions:
            have = key in labels
            if op == "In" and not (have and labels[key] in values):
                return False
            if op == "NotIn" and have and labels[key] in values:
                return False
            if (op == "Exists") != have and op in ("Exists", "DoesNotExist"):
                return False
        return True


@dataclass(frozen=True)
class PodAffinityTerm:
    topology_key: str
    selector: LabelSelector | None
    namespaces: frozenset[str] | None = None  # None: the pod's own namespace; empty: all namespaces

    def selects(self, own_namespace: str, namespace: str, labels: Mapping[str, str]) -> bool:
        if self.selector is None:
            return False
        spaces = self.namespaces
        if spaces is None:
            spaces = frozenset([own_namespace])
        return (not spaces or namespace in spaces) and self.selector.matches(labels)


@dataclass(frozen=True)
class SpreadConstraint:
    topology_key: str
    max_skew: int
    when_unsatisfiable: str  # DoNotSchedule | ScheduleAnyway
    selector: LabelSelector | None
    min_domains: int | None = None


@dataclass(frozen=True)
class PodGroup:
    """`count` identical pods named `<name>-<i>` (or just `name` when it is a single Pod).

    `one_per_node` / `zone_max_skew` / `per_node_max` are the packer's resolved constraints; the raw
    Kubernetes terms (`pod_affinity`, `pod_anti_affinity`, `spread`, `host_ports`) are resolved
    against every group of the batch by `problem.resolve_constraints`.
    """

    name: str
    count: int
    requests: Resources
    requirements: tuple[Requirements, ...] = (Requirements(),)  # OR of terms (required node affinity)
    tolerations: tuple[Toleration, ...] = ()
    one_per_node: bool = False  # at most one of these pods per node
    zone_max_skew: int | None = None  # topology spread over zones (DoNotSchedule)
    pod_names: tuple[str, ...] = field(default=(), compare=False)
    namespace: str = "default"
    labels: tuple[tuple[str, str], ...] = ()
    host_ports: frozenset[tuple[str, str, int]] = frozenset()  # (hostIP, protocol, port)
    pod_affinity: tuple[PodAffinityTerm, ...] = ()
    pod_anti_affinity: tuple[PodAffinityTerm, ...] = ()
    spread: tuple[SpreadConstraint, ...] = ()
    preferred: tuple[Requirements, ...] = ()  # preferred node affinity, heaviest first
    per_node_max: int | None = None  # at most this many of these pods per node (hostname spread)
    single_node: bool = False  # self pod affinity on hostname: every pod on the first node, the rest wait

    def names(self) -> list[str]:
        if self.pod_names:
            return list(self.pod_names)
        return [self.name] if self.count == 1 else [f"{self.name}-{i}" for i in range(self.count)]

    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def node_cap(self) -> int | None:
        """Most pods of this group one node may hold (None: no limit)."""
        caps = [c for c in (1 if self.one_per_node else None, self.per_node_max) if c is not None]
        return min(caps) if caps else None


# --- requests ------------------------------------------------------------------------------------

def _resource_map(doc: Any, path: str) -> dict[str, int]:
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise PodSpecError(path, "expected a map of resource name: quantity")
    out = {}
    for name, value in doc.items():
        try:
            out[str(name)] = amount(str(name), value)
        except QuantityError as exc:
            raise PodSpecError(f"{path}.{name}", str(exc)) from None
    return out


def _container_requests(c: Any, path: str) -> dict[str, int]:
    if not isinstance(c, Mapping):
        raise PodSpecError(path, "expected a container")
    res = c.get("resources") or {}
    if not isinstance(res, Mapping):
        raise PodSpecError(f"{path}.resources", "expected {requests, limits}")
    requests = _resource_map(res.get("requests"), f"{path}.resources.requests")
    limits = _resource_map(res.get("limits"), f"{path}.resources.limits")
    for name, limit in limits.items():  # Kubernetes defaults a missing request to the limit
        if name not in requests:
            requests[name] = limit
        elif requests[name] > limit:
            raise PodSpecError(f"{path}.resources.requests.{name}", "must be less than or equal to the limit")
    return requests


def _add(a: dict[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}


def _max(a: dict[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {k: max(a.get(k, 0), b.get(k, 0)) for k in a.keys() | b.keys()}


def _list(spec: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = spec.get(key) or []
    if not isinstance(value, list):
        raise PodSpecError(f"{path}.{key}", "expected a list")
    return value


def effective_requests(spec: Mapping[str, Any], path: str = "spec") -> Resources:
    """What the scheduler reserves for the pod (Kubernetes' formula, sidecars and overhead included)."""
    total: dict[str, int] = {}
    for i, c in enumerate(_list(spec, "containers", path)):
        total = _add(total, _container_requests(c, f"{path}.containers[{i}]"))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for i, c in enumerate(_list(spec, "initContainers", path)):
        req = _container_requests(c, f"{path}.initContainers[{i}]")
        if c.get("restartPolicy") == "Always":  # a sidecar: runs beside the app containers
            total = _add(total, req)
            sidecars = _add(sidecars, req)
            init_peak = _max(init_peak, sidecars)
        else:
            init_peak = _max(init_peak, _add(req, sidecars))
    total = _add(_max(total, init_peak), _resource_map(spec.get("overhead"), f"{path}.overhead"))
    return Resources.from_amounts(total, 1)


# --- constraints ---------------------------------------------------------------------------------

def _requirement_terms(exprs: Any, path: str) -> Requirements:
    if not isinstance(exprs, list):
        raise PodSpecError(path, "expected a list of {key, operator, values}")
    out: dict[str, Any] = {}
    for i, e in enumerate(exprs):
        where = f"{path}[{i}]"
        if not isinstance(e, Mapping) or not e.get("key"):
            raise PodSpecError(where, "expected {key, operator, values}")
        values = e.get("values") or []
        if not isinstance(values, list):
            raise PodSpecError(f"{where}.values", "expected a list of strings")
        if e.get("operator") in ("Gte", "Lte"):  # Karpenter NodePool operators, not Kubernetes pod ones
            raise PodSpecError(f"{where}.operator", f"unknown operator {e['operator']!r}, expected In, NotIn, "
                                                    "Exists, DoesNotExist, Gt or Lt")
        try:
            vs = value_set(str(e.get("operator", "")), [str(v) for v in values])
        except ValueError as exc:
            raise PodSpecError(f"{where}.operator" if "operator" in str(exc) else f"{where}.values", str(exc)) from None
        key = str(e["key"])
        out[key] = out[key].intersect(vs) if key in out else vs
    return Requirements(out)


def _affinity_terms(terms: Any, path: str, weighted: bool = False) -> list[PodAffinityTerm]:
    if not isinstance(terms, list):
        raise PodSpecError(path, "expected a list of pod affinity terms")
    out = []
    for i, t in enumerate(terms):
        where = f"{path}[{i}]"
        if weighted:
            if not isinstance(t, Mapping) or "podAffinityTerm" not in t:
                raise PodSpecError(where, "expected {weight, podAffinityTerm}")
            _weight(t.get("weight"), f"{where}.weight")
            t, where = t["podAffinityTerm"], f"{where}.podAffinityTerm"
        if not isinstance(t, Mapping) or not t.get("topologyKey"):
            raise PodSpecError(f"{where}.topologyKey", "required (e.g. kubernetes.io/hostname)")
        selector = None if t.get("labelSelector") is None else LabelSelector.parse(t["labelSelector"],
                                                                                   f"{where}.labelSelector")
        spaces = t.get("namespaces")
        namespaces = frozenset(str(s) for s in spaces) if spaces else None
        if t.get("namespaceSelector") is not None and not spaces:
            namespaces = frozenset()  # a namespace selector: treated as every namespace
        out.append(PodAffinityTerm(str(t["topologyKey"]), selector, namespaces))
    return out


def _weight(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise PodSpecError(path, f"{value!r}: expected an integer from 1 to 100")
    return value


def _int(value: Any, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PodSpecError(path, f"{value!r}: expected an integer ≥ {minimum}")
    return value


def _spread(items: Any, path: str) -> list[SpreadConstraint]:
    if not isinstance(items, list):
        raise PodSpecError(path, "expected a list")
    out = []
    for i, c in enumerate(items):
        where = f"{path}[{i}]"
        if not isinstance(c, Mapping) or not c.get("topologyKey"):
            raise PodSpecError(f"{where}.topologyKey", "required")
        when = c.get("whenUnsatisfiable", "DoNotSchedule")
        if when not in ("DoNotSchedule", "ScheduleAnyway"):
            raise PodSpecError(f"{where}.whenUnsatisfiable", f"{when!r}: expected DoNotSchedule or ScheduleAnyway")
        min_domains = c.get("minDomains")
        if min_domains is not None:
            _int(min_domains, f"{where}.minDomains", 1)
        selector = None if c.get("labelSelector") is None else LabelSelector.parse(c["labelSelector"],
                                                                                   f"{where}.labelSelector")
        out.append(SpreadConstraint(str(c["topologyKey"]), _int(c.get("maxSkew", 1), f"{where}.maxSkew", 1), when,
                                    selector, min_domains))
    return out


def _tolerations(items: Any, path: str) -> tuple[Toleration, ...]:
    if not isinstance(items, list):
        raise PodSpecError(path, "expected a list")
    out = []
    for i, t in enumerate(items):
        if not isinstance(t, Mapping):
            raise PodSpecError(f"{path}[{i}]", "expected {key, operator, value, effect}")
        op = t.get("operator", "Equal")
        if op not in TOLERATION_OPERATORS:
            raise PodSpecError(f"{path}[{i}].operator", f"{op!r}: expected Equal or Exists")
        if t.get("effect", "") not in TAINT_EFFECTS:
            raise PodSpecError(f"{path}[{i}].effect", f"{t.get('effect')!r}: expected NoSchedule, PreferNoSchedule "
                                                       "or NoExecute")
        out.append(Toleration(str(t.get("key", "") or ""), op, str(t.get("value", "") or ""), t.get("effect", "")))
    return tuple(out)


def _host_ports(spec: Mapping[str, Any], path: str) -> frozenset[tuple[str, str, int]]:
    ports = set()
    for kind in ("containers", "initContainers"):
        for i, c in enumerate(_list(spec, kind, path)):
            for j, p in enumerate((c or {}).get("ports") or []):
                if not isinstance(p, Mapping) or not p.get("hostPort"):
                    continue
                port = _int(p["hostPort"], f"{path}.{kind}[{i}].ports[{j}].hostPort", 1)
                ports.add((str(p.get("hostIP") or "0.0.0.0"), str(p.get("protocol") or "TCP"), port))
    return frozenset(ports)


def ports_conflict(a: frozenset[tuple[str, str, int]], b: frozenset[tuple[str, str, int]]) -> bool:
    """Kubernetes' NodePorts check: same protocol and port, and the host IPs overlap (0.0.0.0 overlaps all)."""
    return any(pa == pb and proto_a == proto_b and (ia == ib or "0.0.0.0" in (ia, ib))
               for ia, proto_a, pa in a for ib, proto_b, pb in b)


def volume_requirements(spec: Mapping[str, Any], namespace: str, claims: Mapping[tuple[str, str], Mapping[str, Any]],
                        volumes: Mapping[str, Mapping[str, Any]], classes: Mapping[str, Mapping[str, Any]]
                        ) -> Requirements:
    """Zones (and other node labels) the pod's bound PersistentVolumes or StorageClasses allow."""
    out = Requirements()
    for vol in spec.get("volumes") or []:
        claim_name = ((vol or {}).get("persistentVolumeClaim") or {}).get("claimName")
        claim = claims.get((namespace, str(claim_name))) if claim_name else None
        if claim is None:
            continue
        cspec = claim.get("spec") or {}
        pv = volumes.get(str(cspec.get("volumeName") or ""))
        if pv is not None:
            terms = ((((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {})
                     .get("nodeSelectorTerms") or [])
            if terms:
                out = out.intersect(_requirement_terms(terms[0].get("matchExpressions") or [],
                                                       "PersistentVolume.spec.nodeAffinity"))
            continue
        sc = classes.get(str(cspec.get("storageClassName") or ""))
        for topo in (sc or {}).get("allowedTopologies") or []:
            for e in topo.get("matchLabelExpressions") or []:
                out = out.intersect(Requirements({str(e["key"]): value_set("In", e.get("values") or [])}))
            break
    return out


@dataclass(frozen=True)
class Storage:
    """PersistentVolumeClaims, PersistentVolumes and StorageClasses of the input, by name."""

    claims: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    volumes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    classes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def group_from_pod_spec(name: str, count: int, pod_spec: Mapping[str, Any], labels: Mapping[str, str],
                        namespace: str = "default", storage: Storage | None = None, path: str = "spec") -> PodGroup:
    """One group of `count` pods with this spec; raises PodSpecError on a field Kubernetes would reject."""
    if not isinstance(pod_spec, Mapping):
        raise PodSpecError(path, "expected a pod spec")
    selector = pod_spec.get("nodeSelector") or {}
    if not isinstance(selector, Mapping):
        raise PodSpecError(f"{path}.nodeSelector", "expected a map of label: value")
    base = Requirements.from_labels({str(k): str(v) for k, v in selector.items()})
    if storage is not None:
        base = base.intersect(volume_requirements(pod_spec, namespace, storage.claims, storage.volumes,
                                                  storage.classes))
    affinity = pod_spec.get("affinity") or {}
    if not isinstance(affinity, Mapping):
        raise PodSpecError(f"{path}.affinity", "expected {nodeAffinity, podAffinity, podAntiAffinity}")
    node_aff = affinity.get("nodeAffinity") or {}
    terms = (node_aff.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    apath = f"{path}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
    reqs = tuple(base.intersect(_requirement_terms(t.get("matchExpressions") or [], f"{apath}[{i}].matchExpressions"))
                 for i, t in enumerate(terms) if isinstance(t, Mapping)) or (base,)
    preferred = []
    ppath = f"{path}.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution"
    for i, t in enumerate(node_aff.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
        w = _weight((t or {}).get("weight"), f"{ppath}[{i}].weight")
        pref = (t.get("preference") or {}).get("matchExpressions") or []
        preferred.append((-w, i, _requirement_terms(pref, f"{ppath}[{i}].preference.matchExpressions")))
    pa, paa = affinity.get("podAffinity") or {}, affinity.get("podAntiAffinity") or {}
    req_key = "requiredDuringSchedulingIgnoredDuringExecution"
    pref_key = "preferredDuringSchedulingIgnoredDuringExecution"
    pod_affinity = _affinity_terms(pa.get(req_key) or [], f"{path}.affinity.podAffinity.{req_key}")
    anti = _affinity_terms(paa.get(req_key) or [], f"{path}.affinity.podAntiAffinity.{req_key}")
    _affinity_terms(pa.get(pref_key) or [], f"{path}.affinity.podAffinity.{pref_key}", weighted=True)
    _affinity_terms(paa.get(pref_key) or [], f"{path}.affinity.podAntiAffinity.{pref_key}", weighted=True)
    spread = _spread(pod_spec.get("topologySpreadConstraints") or [], f"{path}.topologySpreadConstraints")
    tolerations = _tolerations(pod_spec.get("tolerations") or [], f"{path}.tolerations")
    labels = {str(k): str(v) for k, v in (labels or {}).items()}
    return PodGroup(name, count, effective_requests(pod_spec, path), reqs, tolerations,
                    namespace=namespace, labels=tuple(sorted(labels.items())),
                    host_ports=_host_ports(pod_spec, path), pod_affinity=tuple(pod_affinity),
                    pod_anti_affinity=tuple(anti), spread=tuple(spread),
                    preferred=tuple(r for _, _, r in sorted(preferred, key=lambda x: (x[0], x[1]))))


# --- manifests -----------------------------------------------------------------------------------

class ManifestError(ValueError):
    """A manifest that cannot be planned: names the object and the field."""

    def __init__(self, obj: str, path: str, message: str) -> None:
        self.obj, self.path, self.message = obj, path, message
        super().__init__(f"{obj}: {path}: {message}" if path else f"{obj}: {message}")


@dataclass
class ReadResult:
    groups: list[PodGroup]
    overhead: Resources
    skipped: list[str]  # objects that are not pods to plan ("CronJob batch/nightly: not planned …")


def expand_lists(docs: Iterable[Any]) -> Iterable[Mapping[str, Any]]:
    """`kind: List` (and `*List`) documents, as `kubectl get -o yaml` writes them, become their items."""
    for doc in docs:
        if isinstance(doc, Mapping) and str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"),
                                                                                                 list):
            yield from expand_lists(doc["items"])
        elif isinstance(doc, Mapping):
            yield doc


def _object_name(doc: Mapping[str, Any]) -> str:
    raw = doc.get("metadata")
    meta: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    ns = meta.get("namespace")
    return f"{doc.get('kind', '?')} {ns + '/' if ns else ''}{meta.get('name', '?')}"


def shape_key(namespace: str, spec: Mapping[str, Any], labels: Mapping[str, Any]) -> str:
    """Two pods with the same key schedule identically (same requests, constraints and labels)."""
    keep = {k: v for k, v in spec.items() if k not in ("nodeName", "hostname", "subdomain", "schedulerName",
                                                         "serviceAccountName", "serviceAccount")}
    lab = {k: v for k, v in (labels or {}).items() if k not in PER_POD_LABELS}
    return hashlib.sha1(json.dumps([namespace, keep, lab], sort_keys=True, default=str).encode()).hexdigest()


def _not_provisionable(doc: Mapping[str, Any], meta: Mapping[str, Any]) -> str | None:
    """Why Karpenter would not provision for this Pod (its IsProvisionable): it has finished, it is
    being deleted, or a DaemonSet or the kubelet (a static pod's mirror) owns it. None when it would."""
    phase = (doc.get("status") or {}).get("phase") if isinstance(doc.get("status"), Mapping) else None
    if phase in ("Succeeded", "Failed"):
        return f"phase {phase}"
    if meta.get("deletionTimestamp"):
        return "being deleted"
    owners = meta.get("ownerReferences") or []
    owner = next((o for o in owners if isinstance(o, Mapping) and o.get("controller")), None)
    if owner is not None and owner.get("kind") in ("DaemonSet", "Node"):
        return f"owned by {owner.get('kind')} {owner.get('name')!r} (not a pod to place; a DaemonSet is overhead)"
    return None


def read_manifests(docs: Iterable[Any]) -> ReadResult:
    """Pods and the pods of controllers, grouped by shape; DaemonSet overhead; what was not planned.

    Raises ManifestError naming the object and field for input Kubernetes would reject."""
    docs = list(expand_lists(docs))
    storage = Storage(
        {(str((d.get("metadata") or {}).get("namespace") or "default"), str((d.get("metadata") or {}).get("name"))): d
         for d in docs if d.get("kind") == "PersistentVolumeClaim"},
        {str((d.get("metadata") or {}).get("name")): d for d in docs if d.get("kind") == "PersistentVolume"},
        {str((d.get("metadata") or {}).get("name")): d for d in docs if d.get("kind") == "StorageClass"})
    shapes: dict[str, tuple[str, str, Mapping[str, Any], Mapping[str, str], list[str]]] = {}
    skipped: list[str] = []
    overhead = Resources()
    for doc in docs:
        kind = doc.get("kind")
        meta = doc.get("metadata") or {}
        obj = _object_name(doc)
        if not isinstance(meta, Mapping):
            raise ManifestError(obj, "metadata", "expected a map")
        name = meta.get("name")
        namespace = str(meta.get("namespace") or "default")
        if kind in ("NodePool", "EC2NodeClass", "PersistentVolumeClaim", "PersistentVolume", "StorageClass", "Node"):
            continue
        if kind == "DaemonSet":
            spec = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
            try:
                overhead = overhead + effective_requests(spec, "spec.template.spec")
            except PodSpecError as exc:
                raise ManifestError(obj, exc.path, exc.message) from None
            continue
        if kind == "Pod":
            spec, labels, count, path = doc.get("spec") or {}, meta.get("labels") or {}, 1, "spec"
            if not name:
                raise ManifestError(obj, "metadata.name", "required")
            if isinstance(spec, Mapping) and spec.get("nodeName"):
                skipped.append(f"{obj}: already bound to node {spec['nodeName']}, not planned")
                continue
            why = _not_provisionable(doc, meta)
            if why:
                skipped.append(f"{obj}: {why}, not planned")
                continue
            names = [f"{namespace}/{name}" if meta.get("namespace") else str(name)]
        elif kind in CONTROLLERS:
            spec_all = doc.get("spec") or {}
            field_name = CONTROLLERS[str(kind)]
            raw = spec_all.get(field_name, 1)
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
                raise ManifestError(obj, f"spec.{field_name}", f"{raw!r}: expected a whole number ≥ 0")
            template = spec_all.get("template") or {}
            spec = template.get("spec") or {}
            labels = (template.get("metadata") or {}).get("labels") or {}
            count, path = raw, "spec.template.spec"
            if not name:
                raise ManifestError(obj, "metadata.name", "required")
            names = [f"{name}-{i}" for i in range(count)]
        else:
            skipped.append(f"{obj}: kind {kind!r} is not planned (surge plans Pods, Deployments, StatefulSets, "
                           "ReplicaSets, ReplicationControllers and Jobs)")
            continue
        if not isinstance(spec, Mapping) or not isinstance(labels, Mapping):
            raise ManifestError(obj, path, "expected a pod spec with metadata.labels as a map")
        key = shape_key(namespace, spec, labels)
        if key not in shapes:
            try:  # validate once per shape, naming the first object that has it
                group_from_pod_spec("x", 1, spec, labels, namespace, storage, path)
            except PodSpecError as exc:
                raise ManifestError(obj, exc.path, exc.message) from None
            shapes[key] = (str(name), namespace, spec, labels, [])
        shapes[key][4].extend(names)
    groups = []
    for first, namespace, spec, labels, names in shapes.values():
        if not names:
            continue
        g = group_from_pod_spec(first, len(names), spec, labels, namespace, storage)
        groups.append(dataclasses.replace(g, pod_names=tuple(names)))
    return ReadResult(groups, overhead, skipped)


def groups_from_manifests(docs: Iterable[Mapping[str, Any]]) -> list[PodGroup]:
    """Pods and the pods of Deployments/StatefulSets/ReplicaSets/Jobs, grouped by shape."""
    return read_manifests(docs).groups


def daemonset_overhead(docs: Iterable[Mapping[str, Any]]) -> Resources:
    """Requests every new node pays for DaemonSet pods (those that tolerate everything or have no
    node selector are assumed to land on every node — the common case for agents)."""
    total = Resources()
    for doc in expand_lists(docs):
        if doc.get("kind") == "DaemonSet":
            spec = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
            total = total + effective_requests(spec)
    return total


def selects(term: PodAffinityTerm | SpreadConstraint, owner: PodGroup, other: PodGroup) -> bool:
    """Whether `term` (of `owner`) selects the pods of `other`."""
    if isinstance(term, SpreadConstraint):
        return term.selector is not None and owner.namespace == other.namespace and \
            term.selector.matches(other.label_map())
    return term.selects(owner.namespace, other.namespace, other.label_map())


def self_selecting(group: PodGroup, terms: Sequence[PodAffinityTerm | SpreadConstraint]) -> list[Any]:
    return [t for t in terms if selects(t, group, group)]
