"""`kafka`: scale on consumer-group lag, with KEDA's rules for lag, idle consumers and partitions.

Lag per partition is `latest offset - committed offset`; the total is capped so that no more
consumers are asked for than there are partitions (unless `allowIdleConsumers`), optionally only
counting partitions that have lag, optionally rounded up to a replica count that divides the
partitions evenly. Activity looks at the lag *including* persistent lag, so a stuck partition
still keeps the workload awake even when `excludePersistentLag` hides it from the metric.

Committed offsets are always fetched for explicit partitions (OffsetFetch with a topic list):
an "all topics" OffsetFetch (null topic list, v2+) is not answered correctly by every broker
(tansu omits the topics array), while the explicit form is answered by every Kafka-protocol
broker since 0.8.2. See docs/compatibility.md.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalers.aws_auth import AwsAuthorization, aws_authorization
from scalers.base import MetricSpec, Reading, Trigger, metric_name, normalize_name, sanitize
from scalers.config import address_port_error, check_list_size, parse_bool_like_go
from scalers.errors import (
    AuthError,
    ConfigError,
    FieldError,
    NotFoundError,
    QueryError,
    ScalerError,
    UnreachableError,
)

INVALID_OFFSET = -1
SASL_TYPES = ("none", "plaintext", "scram_sha256", "scram_sha512", "oauthbearer", "gssapi")
_VERSION = re.compile(r"^(0\.\d+\.\d+\.\d+|[1-9]\d*\.\d+\.\d+)$")


@dataclass
class KafkaMetadata:
    """Parsed trigger settings. Filled in KEDA's order, so a failed parse still shows how far it got."""

    brokers: list[str] = field(default_factory=list)
    group: str = ""
    topic: str = ""
    partition_limitation: list[int] | None = None
    offset_reset_policy: str = ""
    lag_threshold: int = 10
    activation_lag_threshold: int = 0
    allow_idle_consumers: bool = False
    exclude_persistent_lag: bool = False
    scale_to_zero_on_invalid_offset: bool = False
    limit_to_partitions_with_lag: bool = False
    ensure_even_distribution_of_partitions: bool = False
    version: str = "1.0.0"
    full_metadata: bool = True
    # security
    sasl_type: str = "none"
    username: str = ""
    password: str = ""
    enable_tls: bool = False
    unsafe_ssl: bool = False
    ca: str = ""
    cert: str = ""
    key: str = ""
    key_password: str = ""
    token_provider: str = ""  # oauthbearer: "bearer" or "aws_msk_iam"
    scopes: list[str] = field(default_factory=list)
    oauth_token_endpoint_uri: str = ""
    oauth_extensions: dict[str, str] = field(default_factory=dict)
    aws_region: str = ""
    aws_auth: AwsAuthorization | None = None  # aws_msk_iam: KEDA's GetAwsAuthorization result
    kerberos_config: str = ""
    keytab: str = ""
    realm: str = ""
    kerberos_service_name: str = ""
    kerberos_disable_fast: bool = False


def parse_partition_limitation(raw: str) -> list[int]:
    """`1,2,10-12` → [1, 2, 10, 11, 12]; whitespace allowed around items and dashes."""
    out: list[int] = []
    for item in (p.strip() for p in raw.split(",")):
        if "-" in item:
            bounds = [b.strip() for b in item.split("-")]
            if len(bounds) != 2 or not all(b.isdigit() for b in bounds):
                raise ValueError(f"invalid partition range {item!r}, expected start-end")
            first, last = int(bounds[0]), int(bounds[1])
            try:
                check_list_size(len(out) + max(0, last - first + 1))
            except ValueError as exc:
                raise ValueError(f"range {item!r}: {exc}") from None
            out.extend(range(first, last + 1))
        elif item.lstrip("-").isdigit():
            check_list_size(len(out) + 1)
            out.append(int(item))
        else:
            raise ValueError(f"invalid partition {item!r}, expected an integer")
    return out


def _value(meta: Mapping[str, str], env: Mapping[str, str], key: str) -> str:
    """Metadata value, or the env var named by `<key>FromEnv` (KEDA's kafka lookup order)."""
    if meta.get(key, "") != "":
        return meta[key]
    env_key = meta.get(f"{key}FromEnv", "")
    return env.get(env_key, "") if env_key else ""


def parse_kafka_metadata(trigger: Trigger) -> tuple[KafkaMetadata, list[FieldError]]:
    meta, auth, env = trigger.metadata, trigger.auth_params, trigger.resolved_env
    md = KafkaMetadata()
    errors: list[FieldError] = []

    def fail(key: str, message: str) -> tuple[KafkaMetadata, list[FieldError]]:
        errors.append(FieldError(key, message))
        return md, errors

    servers = _value(meta, env, "bootstrapServers")
    if not servers:
        return fail("bootstrapServers", "is required (no bootstrapServers given)")
    md.brokers = servers.split(",")
    bad_port = next((e for e in map(address_port_error, md.brokers) if e), None)
    if bad_port:
        return fail("bootstrapServers", bad_port)
    md.group = _value(meta, env, "consumerGroup")
    if not md.group:
        return fail("consumerGroup", "is required (no consumer group given)")
    md.topic = _value(meta, env, "topic")
    if md.topic:
        raw_limit = meta.get("partitionLimitation", "").strip()
        if raw_limit:
            try:
                md.partition_limitation = parse_partition_limitation(raw_limit)
            except ValueError as exc:
                return fail("partitionLimitation", str(exc))
    md.offset_reset_policy = meta.get("offsetResetPolicy", "latest") or "latest"
    if md.offset_reset_policy not in ("latest", "earliest"):
        md.offset_reset_policy = ""
        return fail("offsetResetPolicy", f"got {meta['offsetResetPolicy']!r}, expected 'latest' or 'earliest'")
    for key, attr, minimum in (("lagThreshold", "lag_threshold", 1), ("activationLagThreshold",
                                                                       "activation_lag_threshold", 0)):
        if key in meta:
            try:
                value = int(meta[key])
            except ValueError:
                return fail(key, f"got {meta[key]!r}, expected an integer")
            if value < minimum:
                what = "a positive number" if minimum else "a non-negative number"
                return fail(key, f"got {value}, expected {what}")
            setattr(md, attr, value)
    for key, attr in (("allowIdleConsumers", "allow_idle_consumers"),
                      ("excludePersistentLag", "exclude_persistent_lag"),
                      ("scaleToZeroOnInvalidOffset", "scale_to_zero_on_invalid_offset"),
                      ("limitToPartitionsWithLag", "limit_to_partitions_with_lag"),
                      ("ensureEvenDistributionOfPartitions", "ensure_even_distribution_of_partitions"),
                      ("fullMetadata", "full_metadata")):
        if key in meta:
            try:
                setattr(md, attr, parse_bool_like_go(meta[key]))
            except ValueError as exc:
                return fail(key, f"got {meta[key]!r}, expected {exc}")
    if md.limit_to_partitions_with_lag:
        if md.allow_idle_consumers:
            return fail("limitToPartitionsWithLag", "cannot be combined with allowIdleConsumers")
        if not md.topic:
            return fail("limitToPartitionsWithLag", "requires topic")
        if md.ensure_even_distribution_of_partitions:
            return fail("ensureEvenDistributionOfPartitions", "cannot be combined with limitToPartitionsWithLag")
    if not md.full_metadata and not md.topic:
        return fail("fullMetadata", "false requires topic")
    version = meta.get("version", "1.0.0") or "1.0.0"
    if not _VERSION.match(version):
        return fail("version", f"got {version!r}, expected a Kafka version such as 1.0.0 or 0.10.2.0")
    md.version = version
    errors.extend(_parse_security(md, meta, auth))
    if md.sasl_type == "oauthbearer" and md.token_provider == "aws_msk_iam" and not errors:
        md.aws_auth, aws_errors = aws_authorization(trigger)
        errors.extend(aws_errors)
    return md, errors


def _parse_security(md: KafkaMetadata, meta: Mapping[str, str], auth: Mapping[str, str]) -> list[FieldError]:
    errors: list[FieldError] = []
    tls = (meta.get("tls") or auth.get("tls") or "").strip()
    if tls:
        if tls not in ("enable", "disable"):
            errors.append(FieldError("tls", f"got {tls!r}, expected 'enable' or 'disable'"))
            return errors
        if tls == "enable":
            md.ca, md.cert = auth.get("ca", ""), auth.get("cert", "")
            md.key, md.key_password = auth.get("key", ""), auth.get("keyPassword", "")
            if bool(md.cert) != bool(md.key):
                errors.append(FieldError("cert" if not md.cert else "key", "cert and key must be given together"))
                return errors
            md.enable_tls = True
    if "unsafeSsl" in meta:
        try:
            md.unsafe_ssl = parse_bool_like_go(meta["unsafeSsl"])
        except ValueError as exc:
            errors.append(FieldError("unsafeSsl", f"got {meta['unsafeSsl']!r}, expected {exc}"))
    sasl = (meta.get("sasl") or auth.get("sasl") or "").strip()
    if not sasl or sasl == "none":
        return errors
    if sasl not in SASL_TYPES:
        errors.append(FieldError("sasl", f"got {sasl!r}, expected one of {list(SASL_TYPES)}"))
        return errors
    md.sasl_type = sasl
    if sasl in ("plaintext", "scram_sha256", "scram_sha512"):
        for key in ("username", "password"):
            if not auth.get(key, ""):
                errors.append(FieldError(key, f"is required for sasl {sasl} (in the authentication)"))
            setattr(md, key, auth.get(key, "").strip())
    elif sasl == "oauthbearer":
        errors.extend(_parse_oauthbearer(md, meta, auth))
    else:
        errors.extend(_parse_gssapi(md, auth))
    return errors


def _parse_oauthbearer(md: KafkaMetadata, meta: Mapping[str, str], auth: Mapping[str, str]) -> list[FieldError]:
    errors: list[FieldError] = []
    md.token_provider = (auth.get("saslTokenProvider") or "bearer").strip()
    if md.token_provider == "bearer":
        for key in ("username", "password"):
            if not auth.get(key, ""):
                errors.append(FieldError(key, "is required for sasl oauthbearer"))
            setattr(md, key, auth.get(key, "").strip())
        md.scopes = [s.strip() for s in auth.get("scopes", "").split(",") if s.strip()]
        md.oauth_token_endpoint_uri = auth.get("oauthTokenEndpointUri", "").strip()
        if not md.oauth_token_endpoint_uri:
            errors.append(FieldError("oauthTokenEndpointUri", "is required for sasl oauthbearer"))
        raw_ext = auth.get("oauthExtensions", "").strip()
        if raw_ext:
            for pair in raw_ext.split(","):
                k, sep, v = pair.partition("=")
                if not sep or not k.strip():
                    errors.append(FieldError("oauthExtensions", f"bad extension {pair!r}, expected key=value"))
                    break
                md.oauth_extensions[k.strip()] = v.strip()
    elif md.token_provider == "aws_msk_iam":
        if not md.enable_tls:
            errors.append(FieldError("tls", "must be enabled for saslTokenProvider aws_msk_iam"))
        md.aws_region = (meta.get("awsRegion") or auth.get("awsRegion") or "").strip()
        if not md.aws_region:
            errors.append(FieldError("awsRegion", "is required for saslTokenProvider aws_msk_iam"))
    else:
        errors.append(FieldError("saslTokenProvider", f"got {md.token_provider!r}, expected 'bearer' or 'aws_msk_iam'"))
    return errors


def _parse_gssapi(md: KafkaMetadata, auth: Mapping[str, str]) -> list[FieldError]:
    errors: list[FieldError] = []
    md.username = auth.get("username", "").strip()
    if not md.username:
        errors.append(FieldError("username", "is required for sasl gssapi"))
    md.password, md.keytab = auth.get("password", "").strip(), auth.get("keytab", "")
    if bool(md.password) == bool(md.keytab):
        errors.append(FieldError("keytab", "give exactly one of password and keytab for sasl gssapi"))
    md.realm = auth.get("realm", "").strip()
    if not md.realm:
        errors.append(FieldError("realm", "is required for sasl gssapi"))
    md.kerberos_config = auth.get("kerberosConfig", "")
    if not md.kerberos_config:
        errors.append(FieldError("kerberosConfig", "is required for sasl gssapi"))
    md.kerberos_service_name = auth.get("kerberosServiceName", "").strip()
    if auth.get("kerberosDisableFAST"):
        try:
            md.kerberos_disable_fast = parse_bool_like_go(auth["kerberosDisableFAST"].strip())
        except ValueError as exc:
            errors.append(FieldError("kerberosDisableFAST", f"expected {exc}"))
    return errors


def write_kerberos_files(md: KafkaMetadata, directory: str) -> dict[str, str]:
    """Kerberos libraries read keytab and krb5.conf from files; returns their paths."""
    paths = {}
    for name, content in (("keytab", md.keytab), ("kerberosConfig", md.kerberos_config)):
        if content:
            path = Path(directory, name)
            path.write_text(content)
            path.chmod(0o600)
            paths[name] = str(path)
    return paths


# --- pure lag arithmetic -------------------------------------------------------------------------


def lag_for_partition(
    md: KafkaMetadata,
    consumer_offset: int,
    latest_offset: int | None,
    previous_offset: int | None = None,
) -> tuple[int, int]:
    """(lag, lag including persistent lag) for one partition, per KEDA's rules.

    `latest_offset` None means the broker gave no end offset for the partition: count nothing.
    `previous_offset` is the committed offset seen at the previous poll (excludePersistentLag).
    """
    if consumer_offset == INVALID_OFFSET and md.offset_reset_policy == "latest":
        value = 0 if md.scale_to_zero_on_invalid_offset else 1
        return value, value
    if latest_offset is None:
        return 0, 0
    if consumer_offset == INVALID_OFFSET:  # earliest: everything is unread
        value = 0 if md.scale_to_zero_on_invalid_offset else latest_offset
        return value, value
    lag = latest_offset - consumer_offset
    if md.exclude_persistent_lag and previous_offset is not None and previous_offset == consumer_offset:
        return 0, lag
    return lag, lag


def find_factors(n: int) -> list[int]:
    small = [i for i in range(1, int(n**0.5) + 1) if n % i == 0]
    return sorted(set(small + [n // i for i in small]))


def next_balanced_factor(total_lag: int, partitions: int, lag_threshold: int) -> int:
    """Smallest replica count that divides the partitions evenly and covers the lag."""
    for factor in find_factors(partitions):
        if factor * lag_threshold >= total_lag:
            return factor
    return partitions


@dataclass(frozen=True)
class LagTotals:
    lag: int
    lag_with_persistent: int
    partitions: int


def total_lag(
    md: KafkaMetadata,
    committed: Mapping[str, Mapping[int, int]],
    latest: Mapping[str, Mapping[int, int]],
    previous: Mapping[str, Mapping[int, int]] | None = None,
) -> LagTotals:
    """Sum lag over every partition of every topic in `latest`, then apply KEDA's caps."""
    lag_sum = persistent_sum = partitions = with_lag = 0
    for topic, offsets in latest.items():
        for partition, latest_offset in offsets.items():
            consumer = committed.get(topic, {}).get(partition, INVALID_OFFSET)
            prev = (previous or {}).get(topic, {}).get(partition)
            lag, lag_p = lag_for_partition(md, consumer, latest_offset, prev)
            lag_sum += lag
            persistent_sum += lag_p
            with_lag += lag > 0
        partitions += len(offsets)
    if not md.allow_idle_consumers or md.limit_to_partitions_with_lag:
        upper = with_lag if md.limit_to_partitions_with_lag else partitions
        if lag_sum / md.lag_threshold > upper:
            lag_sum = upper * md.lag_threshold
    if md.ensure_even_distribution_of_partitions and partitions:
        lag_sum = next_balanced_factor(lag_sum, partitions, md.lag_threshold) * md.lag_threshold
    return LagTotals(lag_sum, persistent_sum, partitions)


def limit_partitions(md: KafkaMetadata, topic: str, partitions: list[int]) -> list[int]:
    if md.partition_limitation is None or topic != md.topic:
        return sorted(partitions)
    allowed = set(md.partition_limitation)
    return sorted(p for p in partitions if p in allowed)


# --- client settings and the connection ----------------------------------------------------------


@dataclass(frozen=True)
class TokenProvider:
    name: str  # "OAuthBearer" or "MSK", as KEDA's providers name themselves
    endpoint: str = ""
    client_id: str = ""
    client_secret: str = ""
    scopes: tuple[str, ...] = ()
    extensions: tuple[tuple[str, str], ...] = ()


def client_settings(md: KafkaMetadata) -> dict[str, Any]:
    """aiokafka connection settings for this trigger (pure: no sockets, no files)."""
    settings: dict[str, Any] = {"bootstrap_servers": [b.strip() for b in md.brokers], "full_metadata": md.full_metadata}
    protocol = "SASL_SSL" if md.enable_tls else "SASL_PLAINTEXT"
    if md.sasl_type in ("plaintext", "scram_sha256", "scram_sha512"):
        mechanism = {"plaintext": "PLAIN", "scram_sha256": "SCRAM-SHA-256", "scram_sha512": "SCRAM-SHA-512"}
        settings.update(security_protocol=protocol, sasl_mechanism=mechanism[md.sasl_type],
                        sasl_plain_username=md.username, sasl_plain_password=md.password)
    elif md.sasl_type == "oauthbearer":
        aws = md.aws_auth or AwsAuthorization()
        provider = (TokenProvider("MSK", md.aws_region, aws.access_key_id or aws.role_arn) if md.token_provider ==
                    "aws_msk_iam" else
                    TokenProvider("OAuthBearer", md.oauth_token_endpoint_uri, md.username, md.password,
                                  tuple(md.scopes), tuple(sorted(md.oauth_extensions.items()))))
        settings.update(security_protocol=protocol, sasl_mechanism="OAUTHBEARER", token_provider=provider)
    elif md.sasl_type == "gssapi":
        settings.update(security_protocol=protocol, sasl_mechanism="GSSAPI",
                        sasl_kerberos_service_name=md.kerberos_service_name or "kafka")
    else:
        settings["security_protocol"] = "SSL" if md.enable_tls else "PLAINTEXT"
    return settings


def _ssl_context(md: KafkaMetadata, workdir: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=md.ca or None)
    if md.cert and md.key:
        cert, key = Path(workdir, "cert.pem"), Path(workdir, "key.pem")
        cert.write_text(md.cert)
        key.write_text(md.key)
        key.chmod(0o600)
        ctx.load_cert_chain(str(cert), str(key), password=md.key_password or None)
    if md.unsafe_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class KafkaConnection:
    """One admin client and one group-less consumer per broker set, reused across polls and
    shared by every trigger with the same settings (see `shared_connection`)."""

    def __init__(self, settings: dict[str, Any], md: KafkaMetadata, timeout_s: float) -> None:
        self.settings, self.md, self.timeout_s = settings, md, timeout_s
        self._admin: Any = None
        self._consumer: Any = None
        self._lock = asyncio.Lock()
        self._workdir = tempfile.TemporaryDirectory(prefix="surge-kafka-")
        self.users = 0

    def _kwargs(self) -> dict[str, Any]:
        s = dict(self.settings)
        kwargs: dict[str, Any] = {
            "bootstrap_servers": s["bootstrap_servers"],
            "security_protocol": s["security_protocol"],
            "request_timeout_ms": int(self.timeout_s * 1000),
            "metadata_max_age_ms": 60_000,
        }
        for key in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password", "sasl_kerberos_service_name"):
            if key in s:
                kwargs[key] = s[key]
        if self.md.enable_tls:
            kwargs["ssl_context"] = _ssl_context(self.md, self._workdir.name)
        if s.get("sasl_mechanism") == "OAUTHBEARER":
            provider: TokenProvider = s["token_provider"]
            if provider.name == "MSK":
                from scalers.aws_msk_iam import MskIamTokenProvider

                kwargs["sasl_oauth_token_provider"] = MskIamTokenProvider(
                    self.md.aws_auth or AwsAuthorization(), self.md.aws_region, self.timeout_s)
            else:
                from scalers.kafka_oauth import ClientCredentialsTokenProvider

                kwargs["sasl_oauth_token_provider"] = ClientCredentialsTokenProvider(provider, self.timeout_s)
        if s.get("sasl_mechanism") == "GSSAPI":
            try:
                import gssapi  # noqa: F401
            except ImportError:
                raise ScalerError("", "sasl: gssapi (Kerberos) is parsed but cannot connect: it needs the 'gssapi' "
                                      "Python package and the system's Kerberos library (libkrb5), which surge's "
                                      "image does not ship; use scram_sha512 or oauthbearer") from None
        return kwargs

    async def start(self) -> None:
        async with self._lock:
            if self._admin is not None:
                return
            from aiokafka import AIOKafkaConsumer
            from aiokafka.admin import AIOKafkaAdminClient

            kwargs = self._kwargs()
            admin = AIOKafkaAdminClient(**kwargs)
            consumer = AIOKafkaConsumer(enable_auto_commit=False, **kwargs)
            try:
                await asyncio.wait_for(admin.start(), self.timeout_s * 2)
                await asyncio.wait_for(consumer.start(), self.timeout_s * 2)
            except BaseException:
                await _quiet_close(admin.close(), consumer.stop())
                raise
            self._admin, self._consumer = admin, consumer

    async def topic_partitions(self, topics: list[str] | None, strict: bool = True) -> dict[str, list[int]]:
        """Partitions per topic (all topics when None), read from cluster metadata; a missing topic
        raises NotFoundError, or is left out when not `strict`."""
        from aiokafka.protocol.metadata import MetadataRequest

        # Never auto-create: a scaler asking about a topic must not bring it into existence
        # (aiokafka's describe_topics asks brokers to auto-create on v4+ metadata requests).
        response = await self._admin._send_request(MetadataRequest(topics, allow_auto_topic_creation=False))
        out: dict[str, list[int]] = {}
        for item in response.to_object()["topics"]:
            if item.get("error_code") and topics is not None:
                if not strict:
                    continue
                raise NotFoundError("", f"topic {item.get('topic')!r} does not exist (error {item['error_code']})")
            if item.get("is_internal"):
                continue
            out[item["topic"]] = [p["partition"] for p in item.get("partitions", [])]
        return out

    async def committed(self, group: str, partitions: dict[str, list[int]]) -> dict[str, dict[int, int]]:
        from aiokafka import TopicPartition

        tps = [TopicPartition(t, p) for t, ps in partitions.items() for p in ps]
        if not tps:
            return {}
        offsets = await self._admin.list_consumer_group_offsets(group, partitions=tps)
        out: dict[str, dict[int, int]] = {}
        for tp, meta in offsets.items():
            out.setdefault(tp.topic, {})[tp.partition] = meta.offset
        return out

    async def latest(self, partitions: dict[str, list[int]]) -> dict[str, dict[int, int]]:
        from aiokafka import TopicPartition

        tps = [TopicPartition(t, p) for t, ps in partitions.items() for p in ps]
        if not tps:
            return {}
        ends = await self._consumer.end_offsets(tps)
        out: dict[str, dict[int, int]] = {t: {} for t in partitions}
        for tp, offset in ends.items():
            out[tp.topic][tp.partition] = offset
        return out

    async def close(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        if admin is not None:
            await _quiet_close(admin.close(), consumer.stop())
        self._workdir.cleanup()


async def _quiet_close(*closers: Any) -> None:
    await asyncio.gather(*closers, return_exceptions=True)


_SHARED: dict[str, KafkaConnection] = {}


def shared_connection(md: KafkaMetadata, timeout_s: float) -> KafkaConnection:
    """The connection for these settings, created on first use; refcounted by `release`."""
    settings = client_settings(md)
    key = repr([*sorted((k, repr(v)) for k, v in settings.items()), ("tls", md.ca, md.cert, md.unsafe_ssl)])
    conn = _SHARED.get(key)
    if conn is None:
        conn = _SHARED[key] = KafkaConnection(settings, md, timeout_s)
    conn.users += 1
    return conn


async def release(conn: KafkaConnection) -> None:
    conn.users -= 1
    if conn.users <= 0:
        for key, value in list(_SHARED.items()):
            if value is conn:
                del _SHARED[key]
        await conn.close()


def translate_error(label: str, exc: BaseException) -> ScalerError:
    from aiokafka import errors as kerr

    if isinstance(exc, ScalerError):
        return type(exc)(label, exc.cause)
    if isinstance(exc, kerr.UnknownTopicOrPartitionError):
        return NotFoundError(label, f"kafka: {exc}")
    if isinstance(exc, kerr.GroupAuthorizationFailedError | kerr.TopicAuthorizationFailedError):
        return AuthError(label, f"kafka refused access: {exc}")
    if "SASL" in type(exc).__name__ or "Authentication" in type(exc).__name__:
        return AuthError(label, f"kafka refused the credentials: {exc}")
    if isinstance(exc, kerr.KafkaConnectionError | kerr.KafkaTimeoutError | OSError | TimeoutError):
        return UnreachableError(label, f"kafka brokers unreachable: {str(exc) or type(exc).__name__}")
    return QueryError(label, f"kafka: {type(exc).__name__}: {exc}")


class KafkaScaler:
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        md, errors = parse_kafka_metadata(trigger)
        if errors:
            raise ConfigError(trigger.label, errors)
        self.config = md
        self._conn: KafkaConnection | None = None
        self._previous: dict[str, dict[int, int]] = {}

    def metric_specs(self) -> list[MetricSpec]:
        base = f"kafka-{self.config.topic}" if self.config.topic else f"kafka-{self.config.group}-topics"
        name = metric_name(self.trigger, normalize_name(base))
        return [MetricSpec(name, float(self.config.lag_threshold), self.trigger.metric_type)]

    async def _read(self) -> LagTotals:
        if self._conn is None:
            self._conn = shared_connection(self.config, self.trigger.timeout_s)
        conn = self._conn
        await conn.start()
        md = self.config
        if md.topic:
            found = await conn.topic_partitions([md.topic])
            partitions = {md.topic: limit_partitions(md, md.topic, found.get(md.topic, []))}
        else:
            # The group's topics: those where it has a committed offset (asked per partition).
            everything = await conn.topic_partitions(None)
            offsets = await conn.committed(md.group, everything)
            partitions = {t: sorted(ps) for t, ps in everything.items()
                          if any(o != INVALID_OFFSET for o in offsets.get(t, {}).values())}
        committed = await conn.committed(md.group, partitions)
        latest = await conn.latest(partitions)
        totals = total_lag(md, committed, latest, self._previous)
        self._previous = {t: dict(ps) for t, ps in committed.items()}
        return totals

    async def lag(self) -> LagTotals:
        try:
            return await asyncio.wait_for(self._read(), self.trigger.timeout_s * 3)
        except Exception as exc:
            if self._conn is not None:  # a broken connection is rebuilt at the next poll
                conn, self._conn = self._conn, None
                await release(conn)
            raise translate_error(self.trigger.label, exc) from exc

    async def metrics(self) -> Reading:
        totals = await self.lag()
        value = sanitize(float(totals.lag))
        return Reading({self.metric_specs()[0].name: value},
                       active=totals.lag_with_persistent > self.config.activation_lag_threshold)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await release(conn)
