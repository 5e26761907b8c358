"""DescribeSpotPriceHistory, every page: the one reader of spot prices for the provisioner's live
offerings (`AWSProvider.spot_prices`) and for cost reports (`autoscaler/cost/prices.py`).

Synchronous (boto3's paginator); async callers run it in a worker thread.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any


def spot_price_history(ec2: Any, instance_types: Sequence[str], start: float | None = None,
                       end: float | None = None) -> Iterator[Mapping[str, Any]]:
    """Linux/UNIX spot price rows (InstanceType, AvailabilityZone, SpotPrice, Timestamp) for the types,
    over [start, end] (epoch seconds) when given — the price in force at `start` included, as AWS
    returns it — else AWS's default span; every page."""
    kwargs: dict[str, Any] = {"InstanceTypes": list(instance_types), "ProductDescriptions": ["Linux/UNIX"]}
    if start is not None:
        kwargs["StartTime"] = dt.datetime.fromtimestamp(start, dt.UTC)
    if end is not None:
        kwargs["EndTime"] = dt.datetime.fromtimestamp(end, dt.UTC)
    for page in ec2.get_paginator("describe_spot_price_history").paginate(**kwargs):
        yield from page.get("SpotPriceHistory") or []


def latest_spot_prices(rows: Iterator[Mapping[str, Any]] | Sequence[Mapping[str, Any]]) -> dict[tuple[str, str],
                                                                                             float]:
    """The newest price per (type, zone)."""
    newest: dict[tuple[str, str], tuple[Any, float]] = {}
    for row in rows:
        key = (row["InstanceType"], row["AvailabilityZone"])
        if key not in newest or row["Timestamp"] > newest[key][0]:
            newest[key] = (row["Timestamp"], float(row["SpotPrice"]))
    return {k: p for k, (_, p) in newest.items()}
