"""Read YAML files into typed manifest objects (the only I/O in autoscaler.manifests)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from autoscaler.manifests.http import HTTPScaledObject, InterceptorRoute
from autoscaler.manifests.keda import ClusterTriggerAuthentication, ScaledObject, TriggerAuthentication
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


def load_documents(paths: Iterable[str | Path]) -> list[Document]:
    docs: list[Document] = []
    for path in manifest_files(paths):
        try:
            loaded = list(yaml.safe_load_all(path.read_text()))
        except OSError as exc:
            docs.append(Document(str(path), 0, None, f"cannot read: {exc.strerror or exc}"))
            continue
        except yaml.YAMLError as exc:
            docs.append(Document(str(path), 0, None, f"not valid YAML: {exc}"))
            continue
        for i, raw in enumerate(d for d in loaded if d is not None):
            if not isinstance(raw, dict):
                docs.append(Document(str(path), i, None, f"document {i} is a {type(raw).__name__}, expected a mapping"))
            else:
                docs.append(Document(str(path), i, raw))
    return docs


def load_objects(paths: Iterable[str | Path], kind: type[BaseModel]) -> list[Any]:
    """Every valid object of `kind` in `paths` (raises pydantic.ValidationError on a bad one)."""
    wanted = next(k for k, m in MODELS.items() if m is kind)
    return [kind.model_validate(d.raw) for d in load_documents(paths) if d.raw is not None and d.kind == wanted]
