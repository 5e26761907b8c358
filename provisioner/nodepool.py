"""Karpenter's NodePool (karpenter.sh/v1), for the fields the packer needs. Fields surge does not
act on are reported by `unsupported_fields`, never silently dropped."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from provisioner.requirements import Requirements, Taint
from provisioner.resources import Resources, quantity


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class RequirementSpec(_Model):
    key: str
    operator: str
    values: list[str] = Field(default_factory=list)
    min_values: int | None = None


class TaintSpec(_Model):
    key: str
    value: str = ""
    effect: str


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

    def limit(self) -> Resources | None:
        if not self.spec.limits:
            return None
        big = 10**12
        lim = self.spec.limits
        return Resources(int(quantity(lim["cpu"]) * 1000) if "cpu" in lim else big,
                         int(quantity(lim["memory"]) / 2**20) if "memory" in lim else big,
                         int(quantity(lim["nvidia.com/gpu"])) if "nvidia.com/gpu" in lim else big, big)

    def unsupported_fields(self) -> list[str]:
        out = [f"spec.{k}" for k in (self.spec.model_extra or {})]
        out += [f"spec.template.spec.{k}" for k in (self.spec.template.spec.model_extra or {})]
        out += [f"spec.template.spec.requirements[{i}].minValues" for i, r in
                enumerate(self.spec.template.spec.requirements) if r.min_values is not None]
        d = self.spec.disruption or {}
        out += [f"spec.disruption.budgets[{i}].reasons: Drifted is never a reason in surge (no drift detection)"
                for i, b in enumerate(d.get("budgets") or []) if "Drifted" in (b.get("reasons") or [])]
        return out


def default_nodepool() -> NodePool:
    """What `surge plan` assumes without a NodePool: Linux, on-demand, any type."""
    return NodePool(metadata={"name": "default"}, spec=NodePoolSpec(template=NodeClaimTemplate(
        spec=NodeClaimTemplateSpec(requirements=[
            RequirementSpec(key="kubernetes.io/os", operator="In", values=["linux"]),
            RequirementSpec(key="karpenter.sh/capacity-type", operator="In", values=["on-demand"]),
        ]))))
