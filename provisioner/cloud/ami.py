"""Which SSM public parameters an `amiSelectorTerms` alias reads: `family@version`, where
`latest` follows the newest release (and so drifts nodes when AWS publishes one) and a pinned
version stays put. Paths are AWS's public ones (the EKS-optimized AMI parameters Karpenter reads);
`root` replaces `/aws/service` only where a test account cannot write under it (AWS reserves it).

Covered: al2023 (standard variant), al2, bottlerocket. Not covered: the GPU/Neuron variants
(their types launch on the standard AMI here) and windows2019/2022 (said, not ignored).
"""

from __future__ import annotations

PUBLIC_ROOT = "/aws/service"
ARCHES = ("x86_64", "arm64")


class AliasError(ValueError):
    """An alias surge cannot resolve: the message names the term and what was expected."""


def alias_parameters(alias: str, kubernetes_version: str, root: str = PUBLIC_ROOT) -> list[str]:
    """The parameter names holding the alias's AMI ids, one per architecture."""
    family, _, version = alias.partition("@")
    family = family.lower()
    if not version:
        raise AliasError(f"alias {alias!r}: expected family@version, e.g. al2023@latest or al2023@v20240807")
    k8s = kubernetes_version
    if family == "al2023":
        name = "recommended" if version == "latest" else None
        return [f"{root}/eks/optimized-ami/{k8s}/amazon-linux-2023/{a}/standard/"
                f"{name or f'amazon-eks-node-al2023-{a}-standard-{k8s}-{version}'}/image_id" for a in ARCHES]
    if family == "al2":
        name = "recommended" if version == "latest" else f"amazon-eks-node-{k8s}-{version}"
        dirs = ("amazon-linux-2", "amazon-linux-2-arm64")
        return [f"{root}/eks/optimized-ami/{k8s}/{d}/{name}/image_id" for d in dirs]
    if family == "bottlerocket":
        v = "latest" if version == "latest" else version.removeprefix("v")
        return [f"{root}/bottlerocket/aws-k8s-{k8s}/{a}/{v}/image_id" for a in ARCHES]
    raise AliasError(f"alias {alias!r}: family {family!r} is not resolved by surge (al2023, al2 or bottlerocket)")
