"""Prices: GetProducts parsing on AWS's document shape, spot history lookups, and the live readers
against moto_server (which implements neither price API for real: the stated fallbacks are tested)."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

import boto3
import pytest

from autoscaler.cost.prices import (
    PriceBook,
    SpotCache,
    SpotRow,
    catalog_on_demand,
    load_price_book,
    parse_price_list,
    plausible_spot_rows,
    read_spot_history,
    spot_changes,
    spot_rows,
)
from tests.servers import Server


def product(itype: str, usd: str, **attrs: str) -> str:
    """One GetProducts PriceList entry in AWS's aws_v1 shape (fields as the Pricing API returns them)."""
    sku = f"SKU{abs(hash((itype, usd, tuple(attrs.items())))) % 10**8:08d}"
    a = {"instanceType": itype, "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
         "capacitystatus": "Used", "regionCode": "us-east-1", "location": "US East (N. Virginia)",
         "marketoption": "OnDemand", "usagetype": f"BoxUsage:{itype}", "operation": "RunInstances", **attrs}
    return json.dumps({
        "product": {"productFamily": "Compute Instance", "attributes": a, "sku": sku},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {
            "priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "endRange": "Inf", "beginRange": "0", "appliesTo": [],
                "description": f"${usd} per On Demand Linux {itype} Instance Hour",
                "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7", "pricePerUnit": {"USD": usd}}},
            "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z", "offerTermCode": "JRTCKXETXF", "termAttributes": {}}}},
        "version": "20261115000000", "publicationDate": "2026-11-15T00:00:00Z"})


def test_parse_price_list_keeps_only_plain_linux_shared_used() -> None:
    items = [
        product("m5.large", "0.0960000000"),
        product("m5.large", "0.1880000000", operatingSystem="Windows"),
        product("m5.large", "0.0960000000", capacitystatus="UnusedCapacityReservation"),
        product("m5.large", "0.1010000000", tenancy="Dedicated"),
        product("m5.large", "0.2000000000", preInstalledSw="SQL Std"),
        product("g4dn.xlarge", "0.5260000000"),
        product("p5.48xlarge", "0.0000000000"),  # a zero-priced product is never a price
    ]
    assert parse_price_list(items) == {"m5.large": 0.096, "g4dn.xlarge": 0.526}


def test_spot_price_in_force_at_a_time() -> None:
    rows = [SpotRow("m5.large", "us-east-1a", 0.04, 100.0), SpotRow("m5.large", "us-east-1a", 0.05, 200.0),
            SpotRow("m5.large", "us-east-1b", 0.03, 150.0), SpotRow("m5.large", "us-east-1a", 0.045, 200.0)]
    book = PriceBook("us-east-1", {}, "test", spot_changes(rows))
    assert book.spot_price("m5.large", "us-east-1a", 50) == 0.04  # before the history: the oldest
    assert book.spot_price("m5.large", "us-east-1a", 150) == 0.04
    assert book.spot_price("m5.large", "us-east-1a", 200) == 0.045  # same timestamp twice: the last row wins
    assert book.spot_price("m5.large", "us-east-1c", 200) is None
    assert book.spot_price_any_zone("m5.large", 160) == pytest.approx((0.04 + 0.03) / 2)
    assert plausible_spot_rows([*rows, SpotRow("m5.large", "us-east-1a", 0.00001, 0.0)], 200.0 + 91 * 86400) == []


def clients(server: Server) -> tuple[Any, Any]:
    url = f"http://{server.address}"
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    return (session.client("pricing", region_name="us-east-1", endpoint_url=url),
            session.client("ec2", region_name="us-east-1", endpoint_url=url))


def count_calls(client: Any) -> Counter[str]:
    calls: Counter[str] = Counter()
    client.meta.events.register("before-call.*.*", lambda model, **_: calls.update([model.name]))
    return calls


def test_moto_spot_history_read_paged_and_placeholder_ignored(moto_server: Server) -> None:
    _, ec2 = clients(moto_server)
    now = 1_800_000_000.0
    rows = read_spot_history(ec2, ["m5.large", "g4dn.xlarge"], now - 86400, now)
    # moto answers every zone of every type with a placeholder (0.00001 $/h dated 2006)
    assert {r.instance_type for r in rows} == {"m5.large", "g4dn.xlarge"} and len(rows) >= 6
    assert all(r.price == 0.00001 and r.timestamp < dt.datetime(2007, 1, 1, tzinfo=dt.UTC).timestamp()
               for r in rows)
    assert plausible_spot_rows(rows, now - 86400) == []


def test_moto_price_book_falls_back_and_says_so(moto_server: Server) -> None:
    pricing, ec2 = clients(moto_server)
    calls = count_calls(ec2)
    cache = SpotCache(ttl_s=600)
    clock = iter([1000.0, 1100.0, 1700.0])
    start, end = 1_800_000_000.0 - 86400, 1_800_000_000.0
    book = load_price_book("us-east-1", ["m5.large"], start, end, lambda: next(clock), pricing=pricing, ec2=ec2,
                           spot_cache=cache)
    # Pricing API: moto answers 500 → the bundled catalog, with a note naming why
    assert book.on_demand_source.startswith("catalog")
    assert book.on_demand_price("m5.large") == catalog_on_demand()["m5.large"] == 0.096
    assert any("Pricing API unavailable" in n for n in book.notes)
    # spot history: read (one paged call), the placeholder dropped, so no spot price, with a note
    assert book.spot == {} and book.read_at == 1000.0
    assert any("90-day" in n for n in book.notes)
    assert calls["DescribeSpotPriceHistory"] == 1
    # within the cache's TTL the history is not read again; after it, it is (and the read time moves)
    load_price_book("us-east-1", ["m5.large"], start, end, lambda: next(clock), ec2=ec2, spot_cache=cache)
    assert calls["DescribeSpotPriceHistory"] == 1
    again = load_price_book("us-east-1", ["m5.large"], start, end, lambda: next(clock), ec2=ec2, spot_cache=cache)
    assert calls["DescribeSpotPriceHistory"] == 2 and again.read_at == 1700.0


def test_unreachable_aws_is_a_note_not_a_crash() -> None:
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    from botocore.config import Config

    cfg = Config(connect_timeout=0.5, read_timeout=0.5, retries={"max_attempts": 1})
    dead = "http://127.0.0.1:9"
    book = load_price_book("eu-west-1", ["m5.large"], 0, 3600, lambda: 5.0,
                           pricing=session.client("pricing", region_name="us-east-1", endpoint_url=dead, config=cfg),
                           ec2=session.client("ec2", region_name="eu-west-1", endpoint_url=dead, config=cfg))
    assert book.on_demand_price("m5.large") == 0.096 and book.spot == {}
    assert any("Pricing API unavailable" in n and "unreachable" in n for n in book.notes)
    assert any("DescribeSpotPriceHistory unavailable" in n for n in book.notes)
    assert any("region eu-west-1 may differ" in n for n in book.notes)


def test_spot_rows_accepts_datetimes_and_epochs() -> None:
    when = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    rows = spot_rows([{"InstanceType": "m5.large", "AvailabilityZone": "us-east-1a", "SpotPrice": "0.0412",
                       "Timestamp": when},
                      {"InstanceType": "m5.large", "AvailabilityZone": "us-east-1b", "SpotPrice": "0.05",
                       "Timestamp": 1.0}])
    assert rows == [SpotRow("m5.large", "us-east-1a", 0.0412, when.timestamp()),
                    SpotRow("m5.large", "us-east-1b", 0.05, 1.0)]


async def test_provider_spot_prices_share_the_paged_reader(moto_server: Server) -> None:
    """The provisioner's live spot prices and cost reports read spot history through one paged reader."""
    import time

    from provisioner.cloud.aws import AWSProvider
    from provisioner.cloud.spot import latest_spot_prices, spot_price_history

    _, ec2 = clients(moto_server)
    calls = count_calls(ec2)
    provider = AWSProvider(ec2, "demo", lambda name: None, time.time)  # type: ignore[arg-type, return-value]
    live = await provider.spot_prices(["m5.large", "c5.large"])
    assert calls["DescribeSpotPriceHistory"] == 1
    assert {t for t, _ in live} == {"m5.large", "c5.large"} and len({z for _, z in live}) >= 3
    assert live == latest_spot_prices(list(spot_price_history(ec2, ["m5.large", "c5.large"], time.time())))
