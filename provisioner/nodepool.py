"""Karpenter's NodePool (karpenter.sh/v1), for the fields the packer needs. Fields surge does not
act on are reported by `unsupported_fields`, never silently dropped."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from provisioner.requirements import Requirements, Taint, value_set
from provisioner.resources import QuantityError, Resources, amount


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class RequirementSpec(_Model):
    key: str
    operator: str
    values: list[str] = Field(default_factory=list)
    min_values: int | None = Field(default=None, ge=1, le=50)

    @model_validator(mode="after")
    def _check(self) -> RequirementSpec:
        value_set(self.operator, self.values)  # unknown operators and bad Gt/Lt values fail here
        if self.operator == "In" and not self.values:
            raise ValueError("operator In needs at least one value")
        if self.min_values is not None and self.operator == "In" and len(self.values) < self.min_values:
            raise ValueError(f"minValues {self.min_values} is more than the {len(self.values)} values allowed")
        return self


class TaintSpec(_Model):
    key: str
    value: str = ""
    effect: str

    @field_validator("effect")
    @classmethod
    def _effect(cls, v: str) -> str:
        if v not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ValueError(f"{v!r}: expected NoSchedule, PreferNoSchedule or NoExecute")
        return v


# the karpenter.sh/v1 CRD's patterns: the API server refuses a NodePool that does not match them
_DURATION_OR_NEVER = re.compile(r"^(([0-9]+(s|m|h))+|Never)$")
_DURATION = re.compile(r"^([0-9]+(s|m|h))+$")
_BUDGET_NODES = re.compile(r"^((100|[0-9]{1,2})%|[0-9]+)$")
_BUDGET_DURATION = re.compile(r"^((([0-9]+(h|m))|([0-9]+h[0-9]+m))(0s)?)$")
_BUDGET_SCHEDULE = re.compile(r"^(@(annually|yearly|monthly|weekly|daily|midnight|hourly))"
                              r"|((.+)\s(.+)\s(.+)\s(.+)\s(.+))$")


def _match(pattern: re.Pattern[str], value: object) -> bool:
    return value is None or (isinstance(value, str) and pattern.match(value) is not None)


def crd_problems(pool: NodePool) -> list[tuple[str, str]]:
    """(field, message) for the values the karpenter.sh/v1 CRD's patterns and rules refuse. Not a
    model validator: the controllers read a NodePool leniently and report bad disruption settings
    when they use them (`Disruption.of`); `surge validate` reports these as the API server would."""
    out: list[tuple[str, str]] = []
    t = pool.spec.template.spec
    if not _match(_DURATION_OR_NEVER, t.expire_after):
        out.append(("spec.template.spec.expireAfter", f"{t.expire_after!r}: expected a duration such as 720h or "
                                                      "1h30m, or Never"))
    if not _match(_DURATION, t.termination_grace_period):
        out.append(("spec.template.spec.terminationGracePeriod", f"{t.termination_grace_period!r}: expected a "
                                                                 "duration such as 48h or 30m"))
    d = pool.spec.disruption or {}
    if not _match(_DURATION_OR_NEVER, d.get("consolidateAfter")):
        out.append(("spec.disruption.consolidateAfter", f"{d.get('consolidateAfter')!r}: expected a duration such "
                                                        "as 30s or 5m, or Never"))
    policy = d.get("consolidationPolicy")
    if policy is not None and policy not in ("WhenEmpty", "WhenEmptyOrUnderutilized", "Balanced"):
        out.append(("spec.disruption.consolidationPolicy", f"{policy!r}: expected WhenEmpty, "
                                                           "WhenEmptyOrUnderutilized or Balanced"))
    budgets = d.get("budgets") or []
    if not isinstance(budgets, list) or len(budgets) > 50:
        return [*out, ("spec.disruption.budgets", "expected a list of at most 50 budgets")]
    for i, b in enumerate(budgets):
        at = f"spec.disruption.budgets[{i}]"
        if not isinstance(b, dict):
            out.append((at, "expected a mapping"))
            continue
        if not _match(_BUDGET_NODES, str(b.get("nodes", "10%"))):
            out.append((f"{at}.nodes", f"{b.get('nodes')!r}: expected a count such as 5 or a percentage from 0% "
                                       "to 100%"))
        if not _match(_BUDGET_SCHEDULE, b.get("schedule")):
            out.append((f"{at}.schedule", f"{b.get('schedule')!r}: expected a cron schedule (5 fields) or @daily, "
                                          "@hourly, ..."))
        if not _match(_BUDGET_DURATION, b.get("duration")):
            out.append((f"{at}.duration", f"{b.get('duration')!r}: expected hours and/or minutes such as 1h, 10m "
                                          "or 1h30m"))
        if ("schedule" in b) != ("duration" in b):
            out.append((at, "'schedule' must be set with 'duration'"))
        bad = [r for r in b.get("reasons") or [] if r not in ("Underutilized", "Empty", "Drifted")]
        if bad:
            out.append((f"{at}.reasons", f"{bad}: expected Underutilized, Empty or Drifted"))
    return out


class NodeClaimTemplateSpec(_Model):
    requirements: list[RequirementSpec] = Field(default_factory=list)
    taints: list[TaintSpec] = Field(default_factory=list)
    startup_taints: list[TaintSpec] = Field(default_factory=list)
    node_class_ref: dict[str, Any] | None = None
    expire_after: str | None = None
    termination_grace_period: str | None = None


class TemplateMetadata(_Model):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class NodeClaimTemplate(_Model):
    metadata: TemplateMetadata = Field(default_factory=TemplateMetadata)
    spec: NodeClaimTemplateSpec = Field(default_factory=NodeClaimTemplateSpec)


class NodePoolSpec(_Model):
    template: NodeClaimTemplate = Field(default_factory=NodeClaimTemplate)
    limits: dict[str, str | int] = Field(default_factory=dict)
    weight: int = Field(default=0, ge=0, le=100)
    disruption: dict[str, Any] | None = None

    @field_validator("limits")
    @classmethod
    def _limits(cls, v: dict[str, str | int]) -> dict[str, str | int]:
        for name, q in v.items():
            try:
                amount(name, q)
            except QuantityError as exc:
                raise ValueError(f"limits.{name}: {exc}") from None
        return v


class NodePool(_Model):
    api_version: str = "karpenter.sh/v1"
    kind: str = "NodePool"
    metadata: dict[str, Any]
    spec: NodePoolSpec = Field(default_factory=NodePoolSpec)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", "default"))

    def requirements(self) -> Requirements:
        reqs = Requirements.from_terms([r.model_dump() for r in self.spec.template.spec.requirements])
        labels = Requirements.from_labels(self.spec.template.metadata.labels | {"karpenter.sh/nodepool": self.name})
        return reqs.intersect(labels)

    def taints(self) -> tuple[Taint, ...]:
        # startup taints are removed once the node is ready; pods need not tolerate them
        return tuple(Taint(t.key, t.value, t.effect) for t in self.spec.template.spec.taints)

    def limit_amounts(self) -> dict[str, int]:
        """Limits per resource, in the packer's units (cpu millicores, memory MiB, others whole)."""
        return {name: amount(name, q) for name, q in self.spec.limits.items()}

    def limit(self) -> Resources | None:
        if not self.spec.limits:
            return None
        big = 10**12
        amounts = self.limit_amounts()
        core = {k: amounts.get(k, big) for k in ("cpu", "memory", "nvidia.com/gpu")}
        return Resources.from_amounts(amounts | core, amounts.get("pods", big))

    def min_values(self) -> list[tuple[str, int]]:
        """(key, minValues) of the requirements that set it: the NodeClaim must keep that many
        distinct values of the key among its instance types."""
        return [(r.key, r.min_values) for r in self.spec.template.spec.requirements if r.min_values]

    def unsupported_fields(self) -> list[str]:
        out = [f"spec.{k}" for k in (self.spec.model_extra or {})]
        out += [f"spec.template.spec.{k}" for k in (self.spec.template.spec.model_extra or {})]
        return out


def default_nodepool() -> NodePool:
    """What `surge plan` assumes without a NodePool: Linux, on-demand, any type."""
    return NodePool(metadata={"name": "default"}, spec=NodePoolSpec(template=NodeClaimTemplate(
        spec=NodeClaimTemplateSpec(requirements=[
            RequirementSpec(key="kubernetes.io/os", operator="In", values=["linux"]),
            RequirementSpec(key="karpenter.sh/capacity-type", operator="In", values=["on-demand"]),
        ]))))
