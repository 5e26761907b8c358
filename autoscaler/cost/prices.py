"""Instance prices: on-demand from the AWS Pricing API (offline default: the bundled catalog) and spot
from DescribeSpotPriceHistory, each with where it came from and when it was read.

The parsing and lookups are pure functions over plain values; the two readers (`read_on_demand`,
`read_spot_history`) are the only code that talks to AWS, take a boto3 client, page through every
result and never raise for an unreachable or unimplemented API: they return what they could read
and a note saying what was used instead. moto serves neither price API for real (Pricing:
unimplemented; spot history: a placeholder price), so the offline fallbacks are what tests exercise
end to end and the parsers are tested on real response shapes.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from autoscaler.cost.allocation import Spec
from provisioner.catalog import _raw_snapshot, snapshot_rows

CATALOG_REGION = "us-east-1"  # the bundled snapshot's prices are us-east-1's
PRICING_API_REGION = "us-east-1"  # the Pricing API is served from us-east-1 (and ap-south-1)
SPOT_HISTORY_KEPT_S = 90 * 86400  # AWS keeps 90 days of spot price history; older rows are not AWS's


@dataclass(frozen=True)
class SpotRow:
    """One DescribeSpotPriceHistory row: a price that took effect at `timestamp` (epoch seconds)."""

    instance_type: str
    zone: str
    price: float
    timestamp: float


@dataclass
class PriceBook:
    """Every price a cost report uses, and the story of where each came from.

    `on_demand` is $/hour per instance type in `region`; `spot` holds each (type, zone)'s price
    changes sorted by time, so a price can be looked up as it was at any moment of a window.
    """

    region: str
    on_demand: dict[str, float]
    on_demand_source: str  # "pricing-api" or "catalog (us-east-1 snapshot)"
    spot: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=dict)
    spot_source: str = "none"
    read_at: float | None = None  # when the live prices were read (None: offline only)
    notes: list[str] = field(default_factory=list)

    def on_demand_price(self, instance_type: str) -> float | None:
        return self.on_demand.get(instance_type)

    def spot_price(self, instance_type: str, zone: str, at: float) -> float | None:
        """The spot price in force at `at`: the newest change at or before it, else the oldest
        one known (a window that starts before the history read still gets a price)."""
        changes = self.spot.get((instance_type, zone))
        if not changes:
            return None
        i = bisect.bisect_right(changes, (at, float("inf")))
        return changes[i - 1][1] if i else changes[0][1]

    def spot_price_any_zone(self, instance_type: str, at: float) -> float | None:
        """The mean over zones, for a node whose zone is not known."""
        found = [p for (t, _z) in self.spot if t == instance_type
                 if (p := self.spot_price(t, _z, at)) is not None]
        return sum(found) / len(found) if found else None

    def to_json(self) -> dict[str, Any]:
        return {"region": self.region, "on_demand_source": self.on_demand_source,
                "on_demand_types": len(self.on_demand),
                "spot_source": self.spot_source, "spot_series": len(self.spot), "read_at": self.read_at,
                "notes": list(self.notes)}


def catalog_on_demand() -> dict[str, float]:
    """The bundled us-east-1 on-demand prices (Karpenter's static table, provisioner/data)."""
    return dict(_raw_snapshot()[1])


@cache
def _specs() -> dict[str, Spec]:
    return {r["instance_type"]: Spec(float(r["vcpu"]), float(r["memory_mib"]) * 1024 ** 2, float(r["gpu_count"] or 0))
            for r in snapshot_rows()}


def spec_of(instance_type: str) -> Spec | None:
    """Capacity of an instance type from the bundled snapshot (used when kube-state-metrics is silent)."""
    return _specs().get(instance_type)


def offline_price_book(region: str = CATALOG_REGION) -> PriceBook:
    notes = [] if region == CATALOG_REGION else [
        f"on-demand prices are the bundled {CATALOG_REGION} snapshot; region {region} may differ"]
    return PriceBook(region, catalog_on_demand(), f"catalog ({CATALOG_REGION} snapshot)", notes=notes)


# --- parsing (pure) -----------------------------------------------------------------------------------
def parse_price_list(items: Iterable[str | Mapping[str, Any]]) -> dict[str, float]:
    """On-demand $/hour per instance type from GetProducts `PriceList` entries (JSON strings).

    Only shared-tenancy Linux without pre-installed software and capacity status "Used" is an
    instance's plain price (the same filter Karpenter applies); a product with several hourly
    dimensions keeps the first non-zero one.
    """
    out: dict[str, float] = {}
    for raw in items:
        doc = json.loads(raw) if isinstance(raw, str) else raw
        attrs = (doc.get("product") or {}).get("attributes") or {}
        itype = attrs.get("instanceType")
        if not itype or attrs.get("operatingSystem", "Linux") != "Linux" or attrs.get("tenancy", "Shared") != "Shared" \
                or attrs.get("preInstalledSw", "NA") != "NA" or attrs.get("capacitystatus", "Used") != "Used":
            continue
        for term in ((doc.get("terms") or {}).get("OnDemand") or {}).values():
            for dim in (term.get("priceDimensions") or {}).values():
                if dim.get("unit") not in (None, "Hrs"):
                    continue
                try:
                    usd = float((dim.get("pricePerUnit") or {}).get("USD", "nan"))
                except ValueError:
                    continue
                if usd > 0 and itype not in out:
                    out[itype] = usd
    return out


def spot_rows(history: Iterable[Mapping[str, Any]]) -> list[SpotRow]:
    """DescribeSpotPriceHistory `SpotPriceHistory` entries as rows (Timestamp: datetime or epoch)."""
    rows = []
    for h in history:
        ts = h["Timestamp"]
        rows.append(SpotRow(h["InstanceType"], h["AvailabilityZone"], float(h["SpotPrice"]),
                            ts.timestamp() if hasattr(ts, "timestamp") else float(ts)))
    return rows


def spot_changes(rows: Iterable[SpotRow]) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Rows grouped per (type, zone), sorted by time, repeated timestamps collapsed (the last wins)."""
    by_key: dict[tuple[str, str], dict[float, float]] = {}
    for r in rows:
        by_key.setdefault((r.instance_type, r.zone), {})[r.timestamp] = r.price
    return {k: sorted(v.items()) for k, v in by_key.items()}


def plausible_spot_rows(rows: Iterable[SpotRow], start: float) -> list[SpotRow]:
    """Rows AWS could have served for a window starting at `start`: positive prices no older than the
    90 days AWS keeps (moto answers every type with 0.00001 $/h dated 2006)."""
    return [r for r in rows if r.price > 0 and r.timestamp >= start - SPOT_HISTORY_KEPT_S]


# --- readers (I/O: a boto3 client passed in) ----------------------------------------------------------
def pricing_client(endpoint_url: str | None = None) -> Any:
    import boto3

    return boto3.session.Session().client("pricing", region_name=PRICING_API_REGION, endpoint_url=endpoint_url)


def read_on_demand(pricing: Any, region: str, instance_types: Sequence[str] | None = None) -> dict[str, float]:
    """Every page of GetProducts (AmazonEC2) for `region`, narrowed to `instance_types` when given.
    Raises botocore's errors: the caller decides on the fallback."""
    base = [{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in (
        ("regionCode", region), ("operatingSystem", "Linux"), ("tenancy", "Shared"), ("preInstalledSw", "NA"),
        ("capacitystatus", "Used"), ("productFamily", "Compute Instance"))]
    filter_sets = [[*base, {"Type": "TERM_MATCH", "Field": "instanceType", "Value": t}] for t in instance_types] \
        if instance_types else [base]
    out: dict[str, float] = {}
    paginator = pricing.get_paginator("get_products")
    for filters in filter_sets:
        for page in paginator.paginate(ServiceCode="AmazonEC2", Filters=filters, FormatVersion="aws_v1"):
            for itype, usd in parse_price_list(page.get("PriceList") or []).items():
                out.setdefault(itype, usd)
    return out


def read_spot_history(ec2: Any, instance_types: Sequence[str], start: float, end: float,
                      zones: Sequence[str] | None = None) -> list[SpotRow]:
    """Every page of DescribeSpotPriceHistory (Linux/UNIX) for the types over [start, end]; the
    price in force at `start` is included (AWS returns the change that was current then)."""
    from provisioner.cloud.spot import spot_price_history

    rows = spot_rows(spot_price_history(ec2, instance_types, start, end))
    return [r for r in rows if zones is None or r.zone in zones]


def _problem(exc: BaseException) -> str:
    from provisioner.cloud.aws import aws_problem

    return aws_problem(exc)


@dataclass
class SpotCache:
    """Spot history per (type set, window) read at most once per `ttl_s`; remembers when it read."""

    ttl_s: float = 3600.0
    _entries: dict[tuple[tuple[str, ...], float, float], tuple[float, list[SpotRow]]] = field(default_factory=dict)

    def get(self, ec2: Any, instance_types: Sequence[str], start: float, end: float,
            clock: Callable[[], float]) -> tuple[float, list[SpotRow]]:
        key = (tuple(sorted(instance_types)), start, end)
        now = clock()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit
        entry = (now, read_spot_history(ec2, instance_types, start, end))
        self._entries[key] = entry
        return entry


def load_price_book(region: str, instance_types: Sequence[str], start: float, end: float,
                    clock: Callable[[], float], *, pricing: Any = None, ec2: Any = None,
                    spot_cache: SpotCache | None = None) -> PriceBook:
    """Live prices where a client is given and answers, the bundled catalog otherwise; every
    fallback is a note in the book (and so in the report)."""
    book = offline_price_book(region)
    if pricing is not None:
        try:
            live = read_on_demand(pricing, region, instance_types)
        except Exception as exc:  # botocore errors, unreachable endpoint, unimplemented (moto)
            book.notes.append(f"AWS Pricing API unavailable ({_problem(exc)}): on-demand prices from the "
                              f"bundled catalog")
        else:
            missing = [t for t in instance_types if t not in live]
            book.on_demand = {**book.on_demand, **live}
            book.on_demand_source = "pricing-api" + (" + catalog" if missing else "")
            book.notes = [n for n in book.notes if "bundled" not in n]
            if missing:
                book.notes.append(f"Pricing API had no price for {', '.join(sorted(missing))}: catalog used")
            book.read_at = clock()
    if ec2 is not None and instance_types:
        try:
            read_at, rows = (spot_cache or SpotCache()).get(ec2, instance_types, start, end, clock)
        except Exception as exc:
            book.notes.append(f"DescribeSpotPriceHistory unavailable ({_problem(exc)}): spot nodes priced "
                              "on demand (no spot savings counted)")
        else:
            kept = plausible_spot_rows(rows, start)
            if len(kept) < len(rows):
                book.notes.append(f"{len(rows) - len(kept)} spot price rows older than AWS's 90-day history "
                                  "(a placeholder, e.g. moto's) were ignored: those spot nodes are priced on demand")
            book.spot = spot_changes(kept)
            book.spot_source = f"DescribeSpotPriceHistory ({len(kept)} of {len(rows)} rows)"
            book.read_at = read_at if book.read_at is None else min(book.read_at, read_at)
    return book
