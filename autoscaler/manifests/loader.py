"""Read YAML files into typed manifest objects (the only I/O in autoscaler.manifests)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from autoscaler.manifests.http import HTTPScaledObject, InterceptorRoute
from autoscaler.manifests.keda import ClusterTriggerAuthentication, ScaledObject, TriggerAuthentication
from autoscaler.manifests.reader import Limits, ManifestError, read_file
from provisioner.nodeclass import EC2NodeClass, NodeClaim
from provisioner.nodepool import NodePool

MODELS: dict[str, type[BaseModel]] = {
    "ScaledObject": ScaledObject,
    "TriggerAuthentication": TriggerAuthentication,
    "ClusterTriggerAuthentication": ClusterTriggerAuthentication,
    "HTTPScaledObject": HTTPScaledObject,
    "InterceptorRoute": InterceptorRoute,
    "NodePool": NodePool,
    "EC2NodeClass": EC2NodeClass,
    "NodeClaim": NodeClaim,
}


@dataclass
class Document:
    """One YAML document: its raw mapping, or why it could not be read."""

    file: str
    index: int
    raw: dict[str, Any] | None
    error: str | None = None

    @property
    def kind(self) -> str:
        return str((self.raw or {}).get("kind", ""))

    @property
    def name(self) -> str:
        meta = (self.raw or {}).get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if isinstance(name, dict):  # an unfilled template placeholder such as {my-name}
            return "{" + ", ".join(map(str, name)) + "}"
        return "" if name is None else str(name)


def manifest_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml")))
        else:
            files.append(p)
    return files


def load_documents(paths: Iterable[str | Path], limits: Limits | None = None) -> list[Document]:
    """The documents of every file, through the hardened reader; a file that cannot be read is one
    Document carrying the error (naming file, document and field), so the others are still checked."""
    docs: list[Document] = []
    for path in manifest_files(paths):
        try:
            loaded = read_file(path, limits)
        except ManifestError as exc:
            docs.append(Document(str(path), exc.document or 0, None, str(exc).removeprefix(f"{path}: ")))
            continue
        for i, raw in enumerate(d for d in loaded if d is not None):
            if not isinstance(raw, dict):
                docs.append(Document(str(path), i, None, f"document {i}: is a {type(raw).__name__}, "
                                                         "expected a mapping (a Kubernetes object)"))
            else:
                docs.append(Document(str(path), i, raw))
    return docs


def load_objects(paths: Iterable[str | Path], kind: type[BaseModel]) -> list[Any]:
    """Every valid object of `kind` in `paths` (raises pydantic.ValidationError on a bad one)."""
    wanted = next(k for k, m in MODELS.items() if m is kind)
    return [kind.model_validate(d.raw) for d in load_documents(paths) if d.raw is not None and d.kind == wanted]
