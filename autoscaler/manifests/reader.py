"""The one way surge reads manifests: bytes in, plain documents out, or a `ManifestError`.

Every command (`validate`, `read`, `plan`, `simulate`) and the operator go through here, so a
hostile or broken file fails the same way everywhere: one error that names the file, the
document and the field, never a traceback, never minutes of CPU or gigabytes of memory.

What is checked, before any Python object is built:

- the bytes are UTF-8 (a UTF-8 byte-order mark is dropped; UTF-16/32, Latin-1 and binary files
  are refused with what they look like), and the file is at most `max_bytes` long;
- the YAML event stream (libyaml's C parser) has at most `max_documents` documents, no collection
  nested deeper than `max_depth`, at most `max_aliases` alias references, and no document that
  would expand (aliases counted at their full size, as a consumer walking it sees it) to more than
  `max_nodes` nodes — the "billion laughs" alias bomb is refused after reading its ~80 events.

Only then is the stream loaded with yaml's C safe loader (`CSafeLoader`: no Python object tags).
Objects that arrive already decoded (JSON from the API server) are checked with `check_object`.

The limits default to generous values for Kubernetes manifests (the API server itself refuses
requests over 3 MiB) and can be changed with environment variables `SURGE_MANIFEST_MAX_BYTES`,
`SURGE_MANIFEST_MAX_DOCUMENTS`, `SURGE_MANIFEST_MAX_DEPTH`, `SURGE_MANIFEST_MAX_ALIASES`,
`SURGE_MANIFEST_MAX_NODES` (docs/manifests.md lists them).
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

try:  # the C loader; the pure-Python one is ~10x slower but behaves the same
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - pyyaml without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


class ManifestError(ValueError):
    """A manifest cannot be read. `file`, `document` (0-based index) and `field` (a dotted path)
    say where, as far as known; `str()` is one line naming all three."""

    def __init__(self, file: str, message: str, document: int | None = None, field: str | None = None) -> None:
        self.file = file
        self.document = document
        self.field = field
        self.reason = message
        where = [file]
        if document is not None:
            where.append(f"document {document}")
        if field:
            where.append(field)
        super().__init__(f"{': '.join(where)}: {message}")


@dataclass(frozen=True)
class Limits:
    """How much one manifest file may ask of a reader (see the module docstring)."""

    max_bytes: int = 8 * 1024 * 1024
    max_documents: int = 2000
    max_depth: int = 64
    max_aliases: int = 200
    max_nodes: int = 500_000

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Limits:
        """Defaults, overridden by SURGE_MANIFEST_<FIELD> variables (positive integers)."""
        env = dict(os.environ) if env is None else env
        values: dict[str, int] = {}
        for f in fields(cls):
            name = f"SURGE_MANIFEST_{f.name.upper()}"
            raw = env.get(name)
            if raw is None:
                continue
            if not raw.strip().isdigit() or int(raw) <= 0:
                raise ManifestError(name, f"expected a positive integer, got {raw!r}")
            values[f.name] = int(raw)
        return cls(**values)


def decode(data: bytes, file: str, limits: Limits) -> str:
    """UTF-8 text of a manifest, or a ManifestError saying what the bytes look like instead."""
    if len(data) > limits.max_bytes:
        raise ManifestError(file, f"is {len(data)} bytes, over the limit of {limits.max_bytes} "
                                  "(SURGE_MANIFEST_MAX_BYTES)")
    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                      (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if data.startswith(bom):
            raise ManifestError(file, f"is {name} text (byte-order mark); manifests must be UTF-8 "
                                      f"(convert with: iconv -f {name} -t UTF-8)")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    nul = data.find(b"\x00")
    if nul >= 0:
        every_other = data[1::2] if nul % 2 else data[0::2]
        looks_utf16 = len(data) > 2 and every_other.count(0) > len(every_other) * 0.9
        raise ManifestError(file, ("looks like UTF-16 text without a byte-order mark; manifests must be UTF-8"
                                   if looks_utf16 else f"is binary, not YAML text (NUL byte at offset {nul})"))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ManifestError(file, f"is not UTF-8 (byte 0x{data[exc.start]:02x} on line {line}, offset {exc.start}); "
                                  "save it as UTF-8 (Latin-1: iconv -f LATIN1 -t UTF-8)") from None


def _path(keys: list[str]) -> str:
    out = ""
    for k in keys:
        out += k if k.startswith("[") or not out else f".{k}"
    return _short(out)


def _short(path: str) -> str:
    return path if len(path) <= 160 else path[:70] + " … " + path[-70:]


def _check_events(text: str, file: str, limits: Limits) -> None:
    """Walk libyaml's event stream once, counting what the limits bound, before anything is built."""
    stack: list[_Open] = []
    sizes: dict[str, int] = {}  # anchor -> expanded node count
    document = -1
    aliases = 0
    total = 0

    def where(child: str | None) -> str | None:
        parts = [o.component for o in stack[1:]] + ([child] if child is not None else [])
        return _path(parts) or None

    def child_component() -> str | None:
        if not stack:
            return None
        parent = stack[-1]
        if parent.mapping:
            return "?" if parent.expect_key else parent.last_key
        return f"[{parent.index}]"

    def finished(size: int, anchor: str | None) -> None:
        nonlocal total
        if anchor:
            sizes[anchor] = size
        if stack:
            parent = stack[-1]
            parent.size += size
            if parent.mapping:
                parent.expect_key = not parent.expect_key
            else:
                parent.index += 1

    def count(n: int) -> None:
        nonlocal total
        total += n
        if total > limits.max_nodes:
            raise ManifestError(file, f"has more than {limits.max_nodes} nodes, aliases expanded "
                                      "(SURGE_MANIFEST_MAX_NODES)", document, where(child_component()))

    loader = _Loader(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.DocumentStartEvent):
                document += 1
                total = 0
                if document >= limits.max_documents:
                    raise ManifestError(file, f"has more than {limits.max_documents} documents "
                                              "(SURGE_MANIFEST_MAX_DOCUMENTS)")
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > limits.max_aliases:
                    raise ManifestError(file, f"uses more than {limits.max_aliases} aliases "
                                              "(SURGE_MANIFEST_MAX_ALIASES)", document, where(child_component()))
                size = sizes.get(event.anchor or "", 1)
                count(size)
                finished(size, None)
            elif isinstance(event, yaml.ScalarEvent):
                count(1)
                if stack and stack[-1].mapping and stack[-1].expect_key:
                    stack[-1].last_key = str(event.value)[:40]
                finished(1, event.anchor)
            elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                component = child_component() or ""
                if len(stack) >= limits.max_depth:
                    raise ManifestError(file, f"nests deeper than {limits.max_depth} levels "
                                              "(SURGE_MANIFEST_MAX_DEPTH)", document, where(component))
                count(1)
                stack.append(_Open(component, event.anchor, isinstance(event, yaml.MappingStartEvent)))
            elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                closed = stack.pop()
                finished(closed.size, closed.anchor)
    except yaml.YAMLError as exc:
        raise _yaml_error(file, exc, max(document, 0)) from None
    finally:
        loader.dispose()


@dataclass
class _Open:
    """A collection being read: where it sits in its parent and what has been seen in it."""

    component: str
    anchor: str | None
    mapping: bool
    size: int = 1
    expect_key: bool = True
    index: int = 0
    last_key: str = ""


def _yaml_error(file: str, exc: yaml.YAMLError, document: int) -> ManifestError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    at = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else None
    return ManifestError(file, f"not valid YAML: {problem}", document, at)


def load_text(text: str, file: str, limits: Limits | None = None) -> list[Any]:
    """Every document of a YAML stream (None for empty ones), checked against the limits."""
    limits = limits or Limits.from_env()
    if len(text) > limits.max_bytes:
        raise ManifestError(file, f"is over the limit of {limits.max_bytes} bytes (SURGE_MANIFEST_MAX_BYTES)")
    _check_events(text, file, limits)
    loader = _Loader(text)
    docs: list[Any] = []
    try:
        while loader.check_data():
            docs.append(loader.get_data())
    except yaml.YAMLError as exc:  # constructor errors: bad timestamps, unhashable keys…
        raise _yaml_error(file, exc, len(docs)) from None
    except (RecursionError, MemoryError) as exc:  # the limits should make these unreachable
        raise ManifestError(file, f"too large or too deep to load ({type(exc).__name__})", len(docs)) from None
    finally:
        loader.dispose()
    return docs


def load_bytes(data: bytes, file: str, limits: Limits | None = None) -> list[Any]:
    limits = limits or Limits.from_env()
    return load_text(decode(data, file, limits), file, limits)


def read_file(path: str | Path, limits: Limits | None = None) -> list[Any]:
    """Every document of one file; ManifestError when it cannot be read, decoded or parsed."""
    limits = limits or Limits.from_env()
    name = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(limits.max_bytes + 1)
    except OSError as exc:
        raise ManifestError(name, f"cannot read: {exc.strerror or exc}") from None
    return load_bytes(data, name, limits)


def mappings(path: str | Path, limits: Limits | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, document) for each non-empty document; a document that is not a mapping is an error."""
    for i, doc in enumerate(d for d in read_file(path, limits) if d is not None):
        if not isinstance(doc, dict):
            raise ManifestError(str(path), f"is a {type(doc).__name__}, expected a mapping (a Kubernetes object)", i)
        yield i, doc


def check_object(obj: Any, name: str, limits: Limits | None = None) -> None:
    """The depth and size limits for an object decoded elsewhere (JSON from the API server)."""
    limits = limits or Limits.from_env()
    count = 0
    stack: list[tuple[Any, int, str]] = [(obj, 0, "")]
    while stack:
        value, depth, path = stack.pop()
        count += 1
        if count > limits.max_nodes:
            raise ManifestError(name, f"has more than {limits.max_nodes} nodes (SURGE_MANIFEST_MAX_NODES)")
        if isinstance(value, dict | list):
            if depth >= limits.max_depth:
                raise ManifestError(name, f"nests deeper than {limits.max_depth} levels (SURGE_MANIFEST_MAX_DEPTH)",
                                    field=_short(path))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                child = f"{path}[{k}]" if isinstance(value, list) else (f"{path}.{k}" if path else str(k))
                stack.append((v, depth + 1, child if len(child) < 400 else path))
