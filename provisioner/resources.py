"""Resource vectors (cpu millicores, memory MiB, GPUs, pod slots) and Kubernetes quantity parsing."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
            "E": 1e18}


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity ("500m", "2Gi", "1.5") as a plain number (cores, bytes, count)."""
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(value.strip())
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    number, suffix = float(match.group(1)), match.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    raise ValueError(f"unknown quantity suffix {suffix!r} in {value!r}")


@dataclass(frozen=True, order=True)
class Resources:
    cpu_m: int = 0
    memory_mib: int = 0
    gpu: int = 0
    pods: int = 0

    @classmethod
    def from_requests(cls, requests: dict[str, str | int | float] | None, pods: int = 1) -> Resources:
        r = requests or {}
        cpu = math.ceil(quantity(r["cpu"]) * 1000) if "cpu" in r else 0
        mem = math.ceil(quantity(r["memory"]) / 2**20) if "memory" in r else 0
        gpu = int(quantity(r.get("nvidia.com/gpu", 0)))
        return cls(cpu, mem, gpu, pods)

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu_m + other.cpu_m, self.memory_mib + other.memory_mib, self.gpu + other.gpu,
                         self.pods + other.pods)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu_m - other.cpu_m, self.memory_mib - other.memory_mib, self.gpu - other.gpu,
                         self.pods - other.pods)

    def times(self, n: int) -> Resources:
        return Resources(self.cpu_m * n, self.memory_mib * n, self.gpu * n, self.pods * n)

    def fits_in(self, capacity: Resources) -> bool:
        return (self.cpu_m <= capacity.cpu_m and self.memory_mib <= capacity.memory_mib and self.gpu <= capacity.gpu
                and self.pods <= capacity.pods)

    def how_many_in(self, capacity: Resources) -> int:
        """How many copies of self fit in `capacity` (a zero request never limits)."""
        counts = [c // r for r, c in zip(self.as_tuple(), capacity.as_tuple(), strict=True) if r > 0]
        return max(0, min(counts)) if counts else 10**9

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.cpu_m, self.memory_mib, self.gpu, self.pods)

    def __str__(self) -> str:
        gpu = f", {self.gpu} GPU" if self.gpu else ""
        return f"{self.cpu_m}m CPU, {self.memory_mib}Mi{gpu}"
