"""Karpenter's EC2NodeClass (karpenter.k8s.aws/v1) and NodeClaim (karpenter.sh/v1): the fields
surge reads, with Karpenter's names. Unknown fields are kept (and reported by validation), so a
user's existing manifests load unchanged."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from provisioner.nodepool import RequirementSpec, TaintSpec


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class SelectorTerm(_Model):
    """Match by tags (all must match), or by id, or by name."""

    tags: dict[str, str] = Field(default_factory=dict)
    id: str | None = None
    name: str | None = None


class AMISelectorTerm(SelectorTerm):
    alias: str | None = None  # e.g. al2023@latest
    owner: str | None = None
    ssm_parameter: str | None = None


class BlockDevice(_Model):
    volume_size: str | None = None
    volume_type: str | None = None
    iops: int | None = None
    throughput: int | None = None
    encrypted: bool | None = None
    kms_key_id: str | None = None
    delete_on_termination: bool | None = None
    snapshot_id: str | None = None


class BlockDeviceMapping(_Model):
    device_name: str | None = None
    ebs: BlockDevice | None = None
    root_volume: bool = False


class Kubelet(_Model):
    max_pods: int | None = Field(default=None, ge=0)
    pods_per_core: int | None = Field(default=None, ge=0)
    system_reserved: dict[str, str] = Field(default_factory=dict)
    kube_reserved: dict[str, str] = Field(default_factory=dict)
    eviction_hard: dict[str, str] = Field(default_factory=dict)


class MetadataOptions(_Model):
    http_endpoint: Literal["enabled", "disabled"] = "enabled"
    http_protocol_i_pv6: Literal["enabled", "disabled"] = Field(default="disabled", alias="httpProtocolIPv6")
    http_put_response_hop_limit: int = Field(default=1, ge=1, le=64)
    http_tokens: Literal["required", "optional"] = "required"


class EC2NodeClassSpec(_Model):
    subnet_selector_terms: list[SelectorTerm] = Field(min_length=1)
    security_group_selector_terms: list[SelectorTerm] = Field(min_length=1)
    ami_selector_terms: list[AMISelectorTerm] = Field(min_length=1)
    ami_family: str | None = None
    role: str | None = None
    instance_profile: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    user_data: str | None = None
    block_device_mappings: list[BlockDeviceMapping] = Field(default_factory=list)
    kubelet: Kubelet | None = None
    metadata_options: MetadataOptions | None = None
    detailed_monitoring: bool = False
    associate_public_ip_address: bool | None = None
    instance_store_policy: Literal["RAID0"] | None = None


class EC2NodeClass(_Model):
    api_version: Literal["karpenter.k8s.aws/v1"] = "karpenter.k8s.aws/v1"
    kind: Literal["EC2NodeClass"] = "EC2NodeClass"
    metadata: dict[str, Any]
    spec: EC2NodeClassSpec
    status: dict[str, Any] | None = None

    def unsupported_fields(self) -> list[str]:
        """Fields Karpenter acts on and surge's AWS provider does not (yet): said, not ignored."""
        s = self.spec
        out = [f"spec.{k}" for k in (s.model_extra or {})]
        out += [f"spec.amiSelectorTerms[{i}].alias: {t.alias.split('@')[0]} is not resolved (al2023, al2, bottlerocket)"
                for i, t in enumerate(s.ami_selector_terms)
                if t.alias and t.alias.split("@")[0].lower() not in ("al2023", "al2", "bottlerocket")]
        if s.role and not s.instance_profile:
            out.append("spec.role: surge does not create instance profiles; set spec.instanceProfile")
        for name, value in (("kubelet", s.kubelet), ("amiFamily", s.ami_family),
                            ("associatePublicIPAddress", s.associate_public_ip_address),
                            ("instanceStorePolicy", s.instance_store_policy)):
            if value is not None:
                out.append(f"spec.{name}: not applied to launched instances (put it in spec.userData)"
                           if name in ("kubelet", "amiFamily") else f"spec.{name}: not applied yet")
        if s.detailed_monitoring:
            out.append("spec.detailedMonitoring: not applied yet")
        return out


class NodeClassRef(_Model):
    group: str
    kind: str
    name: str


class ResourceRequests(_Model):
    requests: dict[str, str | int] = Field(default_factory=dict)


class NodeClaimSpec(_Model):
    node_class_ref: NodeClassRef
    requirements: list[RequirementSpec] = Field(default_factory=list)
    resources: ResourceRequests | None = None
    taints: list[TaintSpec] = Field(default_factory=list)
    startup_taints: list[TaintSpec] = Field(default_factory=list)
    expire_after: str | None = None
    termination_grace_period: str | None = None


class NodeClaim(_Model):
    api_version: Literal["karpenter.sh/v1"] = "karpenter.sh/v1"
    kind: Literal["NodeClaim"] = "NodeClaim"
    metadata: dict[str, Any]
    spec: NodeClaimSpec
    status: dict[str, Any] | None = None


_ALIAS_FAMILIES = ("al2", "al2023", "bottlerocket", "windows2019", "windows2022", "windows2025")
_VOLUME_TYPES = ("standard", "io1", "io2", "gp2", "sc1", "st1", "gp3")


def _term_problems(at: str, terms: list[SelectorTerm], keys: tuple[str, ...],
                   exclusive: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for i, t in enumerate(terms):
        given = [k for k in keys if getattr(t, re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(), None)]
        if not given:
            out.append((f"{at}[{i}]", f"expected at least one, got none, {list(keys)}"))
        for k in exclusive:
            if k in given and len(given) > 1:
                out.append((f"{at}[{i}]", f"'{k}' is mutually exclusive, cannot be set with a combination of other "
                                          "fields"))
        if any(not k or not v for k, v in t.tags.items()):
            out.append((f"{at}[{i}].tags", "empty tag keys or values aren't supported"))
    return out


def nodeclass_crd_problems(nc: EC2NodeClass) -> list[tuple[str, str]]:
    """(field, message) for the karpenter.k8s.aws/v1 CRD's validation rules that EC2NodeClasses most
    often break (selector terms, alias format, role/instanceProfile, block devices)."""
    s = nc.spec
    out = _term_problems("spec.subnetSelectorTerms", s.subnet_selector_terms, ("tags", "id"), ("id",))
    out += _term_problems("spec.securityGroupSelectorTerms", s.security_group_selector_terms, ("tags", "id", "name"),
                          ("id", "name"))
    out += _term_problems("spec.amiSelectorTerms", list(s.ami_selector_terms),
                          ("tags", "id", "name", "alias", "ssmParameter"), ("id", "alias"))
    aliases = [(i, t.alias) for i, t in enumerate(s.ami_selector_terms) if t.alias]
    if aliases and len(s.ami_selector_terms) > 1:
        out.append(("spec.amiSelectorTerms", "'alias' is mutually exclusive, cannot be set with a combination of "
                                             "other amiSelectorTerms"))
    for i, alias in aliases:
        family, sep, version = alias.partition("@")
        if not sep or not family or not version:
            out.append((f"spec.amiSelectorTerms[{i}].alias", f"{alias!r} is improperly formatted, must match the "
                                                             "format 'family@version'"))
        elif family not in _ALIAS_FAMILIES:
            out.append((f"spec.amiSelectorTerms[{i}].alias", f"family {family!r} is not supported, must be one of "
                                                             f"{list(_ALIAS_FAMILIES)}"))
        elif family.startswith("windows") and version != "latest":
            out.append((f"spec.amiSelectorTerms[{i}].alias", "windows families may only specify version 'latest'"))
    if not aliases and not s.ami_family:
        out.append(("spec.amiFamily", "must specify amiFamily if amiSelectorTerms does not contain an alias"))
    if bool(s.role) == bool(s.instance_profile):
        out.append(("spec", "must specify exactly one of ['role', 'instanceProfile']"))
    roots = 0
    for i, m in enumerate(s.block_device_mappings):
        roots += m.root_volume
        if m.ebs is not None and m.ebs.volume_type is not None and m.ebs.volume_type not in _VOLUME_TYPES:
            out.append((f"spec.blockDeviceMappings[{i}].ebs.volumeType",
                        f"{m.ebs.volume_type!r}: expected one of {list(_VOLUME_TYPES)}"))
        if m.ebs is not None and not (m.ebs.snapshot_id or m.ebs.volume_size):
            out.append((f"spec.blockDeviceMappings[{i}].ebs", "snapshotID or volumeSize must be defined"))
    if roots > 1:
        out.append(("spec.blockDeviceMappings", "must have only one blockDeviceMappings with rootVolume"))
    return out
