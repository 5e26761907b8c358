"""Whether a NodeClaim has drifted from what its NodePool and EC2NodeClass say now: pure decisions
(no I/O, no clock) that the provisioning controller applies and a cloud provider completes.

Karpenter v1's rules (https://karpenter.sh/docs/concepts/disruption/#drift, and
pkg/controllers/nodeclaim/disruption/drift.go of kubernetes-sigs/karpenter):
- only a Launched NodeClaim can be Drifted; the condition is removed as soon as it is not;
- NodePoolDrifted: the NodePool template's hash differs from the one stamped on the NodeClaim at
  creation (`karpenter.sh/nodepool-hash`), compared only when both carry the same hash version
  (`karpenter.sh/nodepool-hash-version`); requirements and resources are not hashed;
- RequirementsDrifted: the NodePool's requirements no longer allow the node's labels (instance
  type, zone, capacity type, custom labels...);
- from the AWS provider: NodeClassDrift (the EC2NodeClass hash, `karpenter.k8s.aws/ec2nodeclass-hash`,
  over everything but the selector terms, which drift dynamically) and AMIDrift (the instance's
  AMI is not among the AMIs the node class resolves to now — e.g. `al2023@latest` moved on),
  then SubnetDrift (the instance's subnet is no longer selected). Not SecurityGroupDrift: moto's
  CreateFleet does not apply the launch template's groups, so it could not be tested here.
Behavioural fields (weight, limits, disruption) never drift a node.

The hashes are surge's own (sha256 of the canonical JSON), with hash versions of their own, so
NodeClaims stamped by Karpenter (other versions) are not compared but re-stamped, as Karpenter
does after a hash-version bump.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from provisioner.nodeclass import EC2NodeClass
from provisioner.nodepool import NodePool
from provisioner.requirements import Requirements

NODEPOOL_HASH = "karpenter.sh/nodepool-hash"
NODEPOOL_HASH_VERSION = "karpenter.sh/nodepool-hash-version"
NODECLASS_HASH = "karpenter.k8s.aws/ec2nodeclass-hash"
NODECLASS_HASH_VERSION = "karpenter.k8s.aws/ec2nodeclass-hash-version"
NODEPOOL_HASH_V = "surge-v1"  # bump when the hashed fields or their defaults change
NODECLASS_HASH_V = "surge-v1"
STAMPS = (NODEPOOL_HASH, NODEPOOL_HASH_VERSION, NODECLASS_HASH, NODECLASS_HASH_VERSION)
DRIFTED = "Drifted"
# the EC2NodeClass fields that drift dynamically (by what they select), not by hash
_NODECLASS_DYNAMIC = ("subnetSelectorTerms", "securityGroupSelectorTerms", "amiSelectorTerms",
                      "capacityReservationSelectorTerms", "ipPrefixCount", "amiFamily")


def _canonical(value: Any) -> Any:
    """Zero values dropped (an unset field and its empty value hash alike) and lists taken as sets
    (taints in another order are the same template), as Karpenter's hash options do."""
    if isinstance(value, Mapping):
        out = {str(k): _canonical(v) for k, v in value.items()}
        return {k: v for k, v in sorted(out.items()) if v not in (None, "", [], {}, False, 0)}
    if isinstance(value, list | tuple):
        items = [_canonical(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return value


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(_canonical(value), sort_keys=True).encode()).hexdigest()[:16]


def nodepool_hash(pool: NodePool) -> str:
    """The hash of `spec.template` without its requirements (they drift through RequirementsDrifted)."""
    template = pool.spec.template.model_dump(by_alias=True, exclude_none=True)
    spec = {k: v for k, v in template.get("spec", {}).items() if k not in ("requirements", "resources")}
    spec.setdefault("expireAfter", "720h")  # Karpenter's CRD default: writing it out is no change
    return _digest({"metadata": template.get("metadata", {}), "spec": spec})


def nodeclass_family(nodeclass: EC2NodeClass) -> str:
    """amiFamily as Karpenter resolves it: the field, else the alias's family, else Custom."""
    if nodeclass.spec.ami_family:
        return nodeclass.spec.ami_family
    alias = next((t.alias for t in nodeclass.spec.ami_selector_terms if t.alias), None)
    return alias.split("@")[0].upper() if alias else "Custom"


def nodeclass_hash(nodeclass: EC2NodeClass) -> str:
    """The hash of the EC2NodeClass spec without its selector terms, with the resolved AMI family
    (so adding `amiFamily: AL2023` next to an `al2023@latest` alias is no change)."""
    spec = {k: v for k, v in nodeclass.spec.model_dump(by_alias=True, exclude_none=True).items()
            if k not in _NODECLASS_DYNAMIC}
    return _digest({"spec": spec, "family": nodeclass_family(nodeclass)})


def stamps(pool: NodePool, nodeclass: EC2NodeClass | None) -> dict[str, str]:
    """The hash annotations a new NodeClaim carries (what it was made from)."""
    out = {NODEPOOL_HASH: nodepool_hash(pool), NODEPOOL_HASH_VERSION: NODEPOOL_HASH_V}
    if nodeclass is not None:
        out |= {NODECLASS_HASH: nodeclass_hash(nodeclass), NODECLASS_HASH_VERSION: NODECLASS_HASH_V}
    return out


def restamp(annotations: Mapping[str, str], pool: NodePool, nodeclass: EC2NodeClass | None) -> dict[str, str]:
    """Hash annotations to write on a NodeClaim stamped with another hash version (or none): the
    current ones, since such a claim cannot be compared. Empty when nothing needs writing."""
    out: dict[str, str] = {}
    if annotations.get(NODEPOOL_HASH_VERSION) != NODEPOOL_HASH_V:
        out |= {NODEPOOL_HASH: nodepool_hash(pool), NODEPOOL_HASH_VERSION: NODEPOOL_HASH_V}
    if nodeclass is not None and annotations.get(NODECLASS_HASH_VERSION) != NODECLASS_HASH_V:
        out |= {NODECLASS_HASH: nodeclass_hash(nodeclass), NODECLASS_HASH_VERSION: NODECLASS_HASH_V}
    return out


def _hash_differs(annotations: Mapping[str, str], key: str, version_key: str, version: str, current: str) -> bool:
    return annotations.get(version_key) == version and key in annotations and annotations[key] != current


def launched(claim: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Launched" and c.get("status") == "True"
               for c in (claim.get("status") or {}).get("conditions") or [])


def nodepool_drift(claim: Mapping[str, Any], pool: NodePool, type_labels: Mapping[str, str]) -> str | None:
    """NodePoolDrifted or RequirementsDrifted (in Karpenter's order), or None. `type_labels` are
    the labels of the claim's instance type (family, size, arch...) that the node carries too."""
    meta = claim.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if _hash_differs(annotations, NODEPOOL_HASH, NODEPOOL_HASH_VERSION, NODEPOOL_HASH_V, nodepool_hash(pool)):
        return "NodePoolDrifted"
    labels = {**type_labels, **(meta.get("labels") or {})}
    # the requirements alone: template labels are hashed, not requirements (a label change is NodePoolDrifted)
    requirements = Requirements.from_terms([r.model_dump() for r in pool.spec.template.spec.requirements])
    if requirements.first_violation(labels) is not None:
        return "RequirementsDrifted"
    return None


def nodeclass_drift(claim: Mapping[str, Any], nodeclass: EC2NodeClass, images: Iterable[str] | None) -> str | None:
    """NodeClassDrift (static hash) or AMIDrift (the claim's `status.imageID` is not among the
    node class's currently resolved `images`; unknown images are no evidence either way)."""
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    if _hash_differs(annotations, NODECLASS_HASH, NODECLASS_HASH_VERSION, NODECLASS_HASH_V,
                     nodeclass_hash(nodeclass)):
        return "NodeClassDrift"
    image = (claim.get("status") or {}).get("imageID")
    current = set(images or ())
    if image and current and image not in current:
        return "AMIDrift"
    return None


def subnet_drift(subnet: str, subnets: Iterable[str]) -> str | None:
    """SubnetDrift when the instance's subnet is no longer among those the node class selects now.
    An instance that reports no subnet, or nothing selected, is no evidence either way."""
    selected = set(subnets)
    return "SubnetDrift" if subnet and selected and subnet not in selected else None


def drift_conditions(claim: Mapping[str, Any], reason: str | None, now_iso: str) -> list[dict[str, Any]] | None:
    """The claim's conditions with Drifted set (True, with the reason) or removed; None when they
    already say so (nothing to write). The transition time is kept while the reason holds."""
    conditions = list((claim.get("status") or {}).get("conditions") or [])
    current = next((c for c in conditions if c.get("type") == DRIFTED), None)
    rest = [c for c in conditions if c.get("type") != DRIFTED]
    if reason is None:
        return None if current is None else rest
    if current is not None and current.get("status") == "True" and current.get("reason") == reason:
        return None
    since = current.get("lastTransitionTime") if current is not None and current.get("status") == "True" else None
    return [*rest, {"type": DRIFTED, "status": "True", "reason": reason, "message": reason,
                    "lastTransitionTime": since or now_iso}]


def drifted_since(claim: Mapping[str, Any]) -> str | None:
    """When the claim became Drifted (the condition's lastTransitionTime), None if it is not."""
    for c in (claim.get("status") or {}).get("conditions") or []:
        if c.get("type") == DRIFTED and c.get("status") == "True":
            return str(c.get("lastTransitionTime") or "")
    return None
