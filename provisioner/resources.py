"""Resource vectors (cpu millicores, memory MiB, nvidia.com/gpu, pod slots, extended resources) and
Kubernetes quantity parsing.

Quantities follow Kubernetes' grammar exactly (`resource.Quantity`): an optional sign, a decimal
number, then a binary suffix (Ki…Ei), a decimal suffix (n, u, m, k, M, G, T, P, E) or a decimal
exponent (`1e3`). Anything else is an error that says what was expected; a negative amount is an
error wherever a request, a limit or a capacity is read.

Extended resources (`aws.amazon.com/neuron`, `amd.com/gpu`, `ephemeral-storage`, …) ride along in
`extended`, a sorted tuple of (name, amount) so the value stays hashable; `ephemeral-storage` and
`hugepages-*` are counted in MiB, every other extended resource in whole units (Kubernetes rejects
fractional extended resources).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([KMGTPE]i|[numkMGTPE])|([eE][+-]?[0-9]+))?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": Decimal(10**3),
            "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18)}
EXPECTED = "a Kubernetes quantity such as 500m, 2, 1.5, 4Gi, 512Mi or 1e3"

GPU = "nvidia.com/gpu"
MIB_RESOURCES = ("memory", "ephemeral-storage")  # and hugepages-*: counted in MiB
CORE = ("cpu", "memory", GPU, "pods")


class QuantityError(ValueError):
    """A value that is not a Kubernetes quantity, or not one allowed where it stands."""


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity ("500m", "2Gi", "1.5", "1e3") as a plain number (cores, bytes, count)."""
    return float(_decimal(value))


def _decimal(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(f"{value!r} is not {EXPECTED}")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise QuantityError(f"{value!r} is not {EXPECTED}")
        return Decimal(str(value))
    match = _QUANTITY.match(value.strip())
    if not match:
        raise QuantityError(f"{value!r} is not {EXPECTED}")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        raise QuantityError(f"{value!r} is not {EXPECTED}") from None
    suffix, exponent = match.group(2), match.group(3)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix:
        return number * _DECIMAL[suffix]
    if exponent:
        exp = int(exponent[1:])
        if abs(exp) > 30:
            raise QuantityError(f"{value!r}: exponent out of range")
        return number.scaleb(exp)
    return number


def _is_mib(name: str) -> bool:
    return name in MIB_RESOURCES or name.startswith("hugepages-")


def amount(name: str, value: object) -> int:
    """One resource's amount in the unit surge counts it in (cpu millicores, memory and storage MiB,
    everything else whole units), rounded up; negative and fractional-extended amounts are errors."""
    number = _decimal(value)
    if number < 0:
        raise QuantityError(f"{value!r} is negative; a resource amount must be 0 or more")
    if name == "cpu":
        return math.ceil(number * 1000)
    if _is_mib(name):
        return math.ceil(number / 2**20)
    if number != number.to_integral_value():
        raise QuantityError(f"{value!r} is fractional; {name} is counted in whole units (Kubernetes rejects "
                            "fractional extended resources)")
    return int(number)


@dataclass(frozen=True, order=True)
class Resources:
    cpu_m: int = 0
    memory_mib: int = 0
    gpu: int = 0
    pods: int = 0
    extended: tuple[tuple[str, int], ...] = ()  # sorted (name, amount), amounts > 0

    @classmethod
    def from_requests(cls, requests: Mapping[str, object] | None, pods: int = 1) -> Resources:
        """From a requests/allocatable map; every resource name is kept (unknown ones as extended)."""
        values = {str(k): amount(str(k), v) for k, v in (requests or {}).items() if k != "pods"}
        return cls.from_amounts(values, pods)

    @classmethod
    def from_amounts(cls, values: Mapping[str, int], pods: int = 0) -> Resources:
        ext = tuple(sorted((k, int(v)) for k, v in values.items() if k not in CORE and v))
        return cls(int(values.get("cpu", 0)), int(values.get("memory", 0)), int(values.get(GPU, 0)), pods, ext)

    def amounts(self) -> dict[str, int]:
        return {"cpu": self.cpu_m, "memory": self.memory_mib, GPU: self.gpu, "pods": self.pods, **dict(self.extended)}

    def get(self, name: str) -> int:
        return self.amounts().get(name, 0)

    def _combine(self, other: Resources, sign: int) -> Resources:
        ext = dict(self.extended)
        for k, v in other.extended:
            ext[k] = ext.get(k, 0) + sign * v
        return Resources(self.cpu_m + sign * other.cpu_m, self.memory_mib + sign * other.memory_mib,
                         self.gpu + sign * other.gpu, self.pods + sign * other.pods,
                         tuple(sorted((k, v) for k, v in ext.items() if v)))

    def __add__(self, other: Resources) -> Resources:
        return self._combine(other, 1)

    def __sub__(self, other: Resources) -> Resources:
        return self._combine(other, -1)

    def maximum(self, other: Resources) -> Resources:
        a, b = self.amounts(), other.amounts()
        both = {k: max(a.get(k, 0), b.get(k, 0)) for k in a.keys() | b.keys()}
        return Resources.from_amounts(both, both["pods"])

    def times(self, n: int) -> Resources:
        return Resources(self.cpu_m * n, self.memory_mib * n, self.gpu * n, self.pods * n,
                         tuple((k, v * n) for k, v in self.extended))

    def fits_in(self, capacity: Resources) -> bool:
        cap = capacity.amounts()
        return all(v <= cap.get(k, 0) for k, v in self.amounts().items() if v > 0)

    def how_many_in(self, capacity: Resources) -> int:
        """How many copies of self fit in `capacity` (a zero request never limits)."""
        cap = capacity.amounts()
        counts = [cap.get(k, 0) // v for k, v in self.amounts().items() if v > 0]
        return max(0, min(counts)) if counts else 10**9

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.cpu_m, self.memory_mib, self.gpu, self.pods)

    def vector(self, extended_names: Iterable[str]) -> tuple[int, ...]:
        """(cpu, memory, GPU, pods, then the named extended resources): the packer's columns."""
        ext = dict(self.extended)
        return (*self.as_tuple(), *(ext.get(n, 0) for n in extended_names))

    def __str__(self) -> str:
        gpu = f", {self.gpu} GPU" if self.gpu else ""
        ext = "".join(f", {v} {k}" for k, v in self.extended)
        return f"{self.cpu_m}m CPU, {self.memory_mib}Mi{gpu}{ext}"
