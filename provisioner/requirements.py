"""Node-selector requirements as sets of allowed label values, with intersection.

Each key maps to a `ValueSet`: a finite set of allowed values, or "anything but" a set, possibly
with numeric bounds (Gt/Lt), or "must not exist". That is enough to intersect NodePool, pod and
instance-type constraints exactly for the operators Kubernetes defines (In, NotIn, Exists,
DoesNotExist, Gt, Lt).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

WELL_KNOWN = (
    "node.kubernetes.io/instance-type", "karpenter.sh/capacity-type", "karpenter.sh/nodepool",
    "topology.kubernetes.io/zone", "kubernetes.io/arch", "kubernetes.io/os",
    "karpenter.k8s.aws/instance-family", "karpenter.k8s.aws/instance-category",
    "karpenter.k8s.aws/instance-generation", "karpenter.k8s.aws/instance-cpu", "karpenter.k8s.aws/instance-memory",
    "karpenter.k8s.aws/instance-gpu-count", "karpenter.k8s.aws/instance-gpu-name", "karpenter.k8s.aws/instance-size",
)


@dataclass(frozen=True)
class ValueSet:
    include: frozenset[str] | None = None  # None: any value
    exclude: frozenset[str] = frozenset()
    gt: float | None = None
    lt: float | None = None
    must_exist: bool = False
    must_not_exist: bool = False

    def allows(self, value: str | None) -> bool:
        if value is None:
            return not self.must_exist and self.include is None and self.gt is None and self.lt is None
        if self.must_not_exist or value in self.exclude:
            return False
        if self.include is not None and value not in self.include:
            return False
        if self.gt is not None or self.lt is not None:
            try:
                number = float(value)
            except ValueError:
                return False
            if (self.gt is not None and not number > self.gt) or (self.lt is not None and not number < self.lt):
                return False
        return True

    def intersect(self, other: ValueSet) -> ValueSet:
        include = (self.include if other.include is None else other.include if self.include is None
                   else self.include & other.include)
        gt = max((b for b in (self.gt, other.gt) if b is not None), default=None)
        lt = min((b for b in (self.lt, other.lt) if b is not None), default=None)
        return ValueSet(include, self.exclude | other.exclude, gt, lt, self.must_exist or other.must_exist,
                        self.must_not_exist or other.must_not_exist)

    def is_empty(self) -> bool:
        if self.must_not_exist and (self.must_exist or self.include is not None):
            return True
        if self.include is not None:
            return not any(self.allows(v) for v in self.include)
        return self.gt is not None and self.lt is not None and self.gt >= self.lt

    def describe(self) -> str:
        parts = []
        if self.include is not None:
            parts.append(f"In {sorted(self.include)}")
        if self.exclude:
            parts.append(f"NotIn {sorted(self.exclude)}")
        if self.gt is not None:
            parts.append(f"Gt {self.gt:g}")
        if self.lt is not None:
            parts.append(f"Lt {self.lt:g}")
        if self.must_not_exist:
            parts.append("DoesNotExist")
        elif self.must_exist and not parts:
            parts.append("Exists")
        return " and ".join(parts)


def value_set(operator: str, values: Iterable[str] = ()) -> ValueSet:
    vals = frozenset(str(v) for v in values)
    if operator == "In":
        return ValueSet(include=vals, must_exist=True)
    if operator == "NotIn":
        return ValueSet(exclude=vals)
    if operator == "Exists":
        return ValueSet(must_exist=True)
    if operator == "DoesNotExist":
        return ValueSet(must_not_exist=True)
    if operator in ("Gt", "Lt", "Gte", "Lte"):
        if len(vals) != 1:
            raise ValueError(f"{operator} takes exactly one value, got {sorted(vals)}")
        try:
            number = int(next(iter(vals)))
        except ValueError:
            raise ValueError(f"{operator} takes an integer, got {next(iter(vals))!r}") from None
        # Gte/Lte (Karpenter's NodePool operators) on integers: Gte n is Gt n-1, Lte n is Lt n+1
        if operator in ("Gt", "Gte"):
            return ValueSet(gt=number - (1 if operator == "Gte" else 0), must_exist=True)
        return ValueSet(lt=number + (1 if operator == "Lte" else 0), must_exist=True)
    raise ValueError(f"unknown operator {operator!r}, expected In, NotIn, Exists, DoesNotExist, Gt or Lt")


@dataclass(frozen=True)
class Requirements:
    """A conjunction of per-key constraints."""

    by_key: Mapping[str, ValueSet] = field(default_factory=dict)

    @classmethod
    def from_terms(cls, terms: Iterable[Mapping[str, Any]]) -> Requirements:
        """From node-selector requirement dicts ({key, operator, values})."""
        out: dict[str, ValueSet] = {}
        for term in terms:
            key = str(term["key"])
            vs = value_set(str(term["operator"]), [str(v) for v in term.get("values") or []])
            out[key] = out[key].intersect(vs) if key in out else vs
        return cls(out)

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Requirements:
        return cls({k: ValueSet(include=frozenset([v]), must_exist=True) for k, v in labels.items()})

    def intersect(self, other: Requirements) -> Requirements:
        keys = set(self.by_key) | set(other.by_key)
        merged: dict[str, ValueSet] = {}
        for k in keys:
            a, b = self.by_key.get(k), other.by_key.get(k)
            if a is not None and b is not None:
                merged[k] = a.intersect(b)
            else:
                merged[k] = a if a is not None else b  # type: ignore[assignment]
        return Requirements(merged)

    def conflict(self) -> str | None:
        for key, vs in self.by_key.items():
            if vs.is_empty():
                return f"{key}: no value satisfies every requirement"
        return None

    def first_violation(self, labels: Mapping[str, str]) -> str | None:
        """Why a node with `labels` does not satisfy these requirements (None when it does)."""
        for key, vs in self.by_key.items():
            if not vs.allows(labels.get(key)):
                return f"{key} {vs.describe()} (node has {labels.get(key, 'no such label')!r})"
        return None


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if not self.key:
            return self.operator == "Exists"
        if self.key != taint.key:
            return False
        return self.operator == "Exists" or self.value == taint.value


def untolerated(taints: Iterable[Taint], tolerations: Iterable[Toleration]) -> Taint | None:
    tols = list(tolerations)
    for taint in taints:
        if taint.effect == "PreferNoSchedule":
            continue
        if not any(t.tolerates(taint) for t in tols):
            return taint
    return None
