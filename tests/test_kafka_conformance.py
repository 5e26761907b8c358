"""KEDA's kafka scaler test tables, case by case (tests/compat/keda-vectors/kafka.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scalers.base import Trigger
from scalers.errors import ConfigError
from scalers.kafka import (
    KafkaMetadata,
    KafkaScaler,
    client_settings,
    find_factors,
    lag_for_partition,
    limit_partitions,
    next_balanced_factor,
    parse_kafka_metadata,
    parse_partition_limitation,
    write_kerberos_files,
)
from tests.fixtures.conformance import vector_cases, vector_file

KAFKA = vector_file("kafka.json")
FIXED = KAFKA["fixed_inputs"]


def parse(metadata: dict[str, str], auth: dict[str, str] | None, index: int = 0) -> tuple[KafkaMetadata, list[Any]]:
    return parse_kafka_metadata(Trigger(type="kafka", metadata=metadata, auth_params=auth or {}, index=index))


def check_tls_params(md: KafkaMetadata, auth: dict[str, str]) -> None:
    if md.enable_tls:
        assert (md.ca, md.cert, md.key, md.key_password) == (
            auth.get("ca", ""), auth.get("cert", ""), auth.get("key", ""), auth.get("keyPassword", ""))


@pytest.mark.conformance("kafka.json")
@pytest.mark.parametrize("case", vector_cases("kafka.json"))
def test_kafka_table(case: dict[str, Any], tmp_path: Path) -> None:
    handler = globals()["_" + case["table"]]
    handler(case, tmp_path)


def _parseKafkaMetadataTestDataset(case: dict[str, Any], _: Path) -> None:
    exp = case["expected"]
    outcomes = []
    for auth in (FIXED["validWithAuthParams"], FIXED["validWithoutAuthParams"]):
        md, errors = parse(case["metadata"], auth)
        outcomes.append(bool(errors))
        assert bool(errors) is case["expect_error"], errors
        # compared even on error: how far the parse got
        assert len(md.brokers) == exp["numBrokers"]
        assert md.brokers == (exp["brokers"] or [])
        assert (md.group, md.topic, md.partition_limitation) == (exp["group"], exp["topic"], exp["partitionLimitation"])
        if not errors:
            assert md.offset_reset_policy == exp["offsetResetPolicy"]
            assert md.allow_idle_consumers is exp["allowIdleConsumers"]
            assert md.exclude_persistent_lag is exp["excludePersistentLag"]
            assert md.limit_to_partitions_with_lag is exp["limitToPartitionsWithLag"]
            assert md.ensure_even_distribution_of_partitions is exp["ensureEvenDistributionOfPartitions"]
            assert md.full_metadata is exp["fullMetadata"]
            assert md.lag_threshold == int(case["metadata"].get("lagThreshold", 10))
    assert outcomes[0] == outcomes[1]


def _parseKafkaAuthParamsTestDataset(case: dict[str, Any], tmp_path: Path) -> None:
    auth = case["authParams"]
    md, errors = parse(FIXED["validKafkaMetadata"], auth)
    assert bool(errors) is case["expect_error"], errors
    if errors:
        return
    assert md.enable_tls is case["expected"]["enableTLS"]
    check_tls_params(md, auth)
    if md.sasl_type == "gssapi":
        paths = write_kerberos_files(md, str(tmp_path))
        if auth.get("keytab"):
            assert Path(paths["keytab"]).read_text() == auth["keytab"]
        assert Path(paths["kerberosConfig"]).read_text() == auth["kerberosConfig"]
        assert md.kerberos_service_name == auth.get("kerberosServiceName", "")


def _parseAuthParamsTestDataset(case: dict[str, Any], _: Path) -> None:
    # Upstream (TestKafkaAuthParamsInScaledObject) asserts the outcome and, when TLS ends up on,
    # that ca/cert/key/keyPassword came from the auth params; its enableTLS column is not compared.
    md, errors = parse(case["metadata"], case["authParams"])
    assert bool(errors) is case["expect_error"], errors
    if not errors:
        if case["metadata"].get("tls") == "enable" or (case["authParams"].get("tls") == "enable"
                                                        and "tls" not in case["metadata"]):
            assert md.enable_tls
        check_tls_params(md, case["authParams"])
        assert md.sasl_type == (case["metadata"].get("sasl") or case["authParams"].get("sasl") or "none").strip()


def _parseKafkaOAuthbearerAuthParamsTestDataset(case: dict[str, Any], _: Path) -> None:
    md, errors = parse(FIXED["validKafkaMetadata"] | case["metadata"], case["authParams"])
    assert bool(errors) is case["expect_error"], errors
    if not errors:
        assert md.enable_tls is case["expected"]["enableTLS"]
        if case["authParams"].get("scopes"):
            assert md.scopes == [s.strip() for s in case["authParams"]["scopes"].split(",")]


def _kafkaMetricIdentifiers(case: dict[str, Any], _: Path) -> None:
    trigger = Trigger(type="kafka", metadata=case["metadata"], auth_params=FIXED["validWithAuthParams"],
                      index=case["expected"]["triggerIndex"])
    assert KafkaScaler(trigger).metric_specs()[0].name == case["name"]


def _TestKafkaClientsOAuthTokenProvider(case: dict[str, Any], _: Path) -> None:
    md, errors = parse(case["metadata"], case["authParams"])
    assert not errors
    settings = client_settings(md)
    assert settings["sasl_mechanism"] == "OAUTHBEARER"
    assert settings["token_provider"].name == case["expected"]["expectedTokenProvider"]


def _TestKafkaClientConfigFullMetadata(case: dict[str, Any], _: Path) -> None:
    md, errors = parse(case["metadata"], None)
    assert not errors
    assert client_settings(md)["full_metadata"] is case["expected"]["expectedFullMetadata"]


def _TestGetTopicPartitions(case: dict[str, Any], _: Path) -> None:
    md, errors = parse(case["metadata"], None)
    assert not errors
    topic = case["metadata"]["topic"]
    assert {topic: limit_partitions(md, topic, case["inputs"]["partitionIds"])} == case["expected"]["exp"]


def _TestKafkaParsePartitionLimitation(case: dict[str, Any], _: Path) -> None:
    if case["expect_error"]:
        with pytest.raises(ValueError):
            parse_partition_limitation(case["inputs"]["input"])
    else:
        assert parse_partition_limitation(case["inputs"]["input"]) == case["expected"]["expected"]


def _TestGetLagForPartition_MissingPartition(case: dict[str, Any], _: Path) -> None:
    inp = case["inputs"]
    md = KafkaMetadata(offset_reset_policy=inp["offsetResetPolicy"],
                       scale_to_zero_on_invalid_offset=inp["scaleToZeroOnInvalidOffset"])
    latest = {int(k): v for k, v in inp["topicPartitionOffsets"]["test-topic"].items()}.get(0)
    expected = (case["expected"]["expectedLag"], case["expected"]["expectedLagWithPersistent"])
    assert lag_for_partition(md, inp["consumerOffset"], latest) == expected


def _TestFindFactors(case: dict[str, Any], _: Path) -> None:
    assert find_factors(case["inputs"]["n"]) == case["expected"]["factors"]


def _TestGetNextFactor(case: dict[str, Any], _: Path) -> None:
    inp = case["inputs"]
    factor = next_balanced_factor(inp["totalLag"], inp["totalTopicPartitions"], inp["lagThreshold"])
    assert factor == case["expected"]["factor"]


def test_config_error_names_trigger_and_field() -> None:
    with pytest.raises(ConfigError, match=r'trigger kafka "orders": lagThreshold: got 0, expected a positive'):
        KafkaScaler(Trigger(type="kafka", name="orders", metadata=FIXED["validKafkaMetadata"] | {"lagThreshold": "0"}))
