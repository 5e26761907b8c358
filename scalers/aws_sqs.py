"""`aws-sqs-queue`: scale on the messages waiting in an SQS queue.

The metric counts visible messages, plus in-flight ones (received, not yet deleted) unless
`scaleOnInFlight` is false, plus delayed ones when `scaleOnDelayed` is true — in-flight messages
are work in progress, so counting them keeps busy consumers from being scaled away.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from scalers.aws_auth import aws_authorization, boto_session
from scalers.base import MetricSpec, Reading, Trigger, metric_name, normalize_name, parse_trigger_config, sanitize
from scalers.config import METADATA_OR_ENV, param
from scalers.errors import AuthError, ConfigError, FieldError, NotFoundError, QueryError, UnreachableError

_REQUEST_URI = re.compile(r"^(/|[A-Za-z][A-Za-z0-9+.-]*:)")


@dataclass(frozen=True, kw_only=True)
class SqsConfig:
    queue_url: str = param("queueURL", METADATA_OR_ENV)
    queue_length: int = param("queueLength", default=5)
    activation_queue_length: int = param("activationQueueLength", default=0)
    aws_region: str = param("awsRegion", ("triggerMetadata", "authParams"))
    aws_endpoint: str = param("awsEndpoint", optional=True)
    scale_on_in_flight: bool = param("scaleOnInFlight", default=True)
    scale_on_delayed: bool = param("scaleOnDelayed", default=False)
    identity_owner: str = param("identityOwner", optional=True)

    @property
    def queue_name(self) -> str:
        return queue_name(self.queue_url)

    def validate(self) -> list[FieldError]:
        try:
            queue_name(self.queue_url)
        except ValueError as exc:
            return [FieldError("queueURL", str(exc))]
        return []


def queue_name(url: str) -> str:
    """The queue name: last segment of `https://sqs.<region>.amazonaws.com/<account>/<name>`, or
    the value itself when it is not a request URI (Go's url.ParseRequestURI fails: a bare name)."""
    if not _REQUEST_URI.match(url):
        return url
    parts = urlparse(url).path.split("/")
    if len(parts) != 3 or not parts[2]:
        raise ValueError(f"cannot get queueName from queueURL: got {url!r}, expected "
                         "https://<endpoint>/<account>/<queue name> or a bare queue name")
    return parts[2]


def message_count(cfg: SqsConfig, attributes: dict[str, str]) -> int:
    """The sum KEDA computes; an attribute asked for but missing or not an integer is an error."""
    return sum_attributes(attribute_names(cfg), attributes)


def attribute_names(cfg: SqsConfig) -> list[str]:
    wanted = ["ApproximateNumberOfMessages"]
    if cfg.scale_on_in_flight:
        wanted.append("ApproximateNumberOfMessagesNotVisible")
    if cfg.scale_on_delayed:
        wanted.append("ApproximateNumberOfMessagesDelayed")
    return wanted


def sum_attributes(names: list[str], attributes: dict[str, str]) -> int:
    total = 0
    for name in names:
        if name not in attributes:
            raise ValueError(f"metric {name} not found in SQS queue attributes")
        try:
            total += int(attributes[name], 10)
        except ValueError:
            raise ValueError(f"attribute {name} is {attributes[name]!r}, expected an integer") from None
    return total


class SqsQueueScaler:
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.config = parse_trigger_config(SqsConfig, trigger)
        self.auth, errors = aws_authorization(trigger)
        if errors:
            raise ConfigError(trigger.label, errors)
        self._client: Any = None

    def metric_specs(self) -> list[MetricSpec]:
        name = metric_name(self.trigger, normalize_name(f"aws-sqs-{self.config.queue_name}"))
        return [MetricSpec(name, float(self.config.queue_length), self.trigger.metric_type)]

    def _connect(self) -> Any:
        if self._client is None:
            from botocore.config import Config

            cfg, timeout = self.config, self.trigger.timeout_s
            session = boto_session(self.auth, cfg.aws_region, cfg.aws_endpoint or None, timeout)
            timeouts = Config(connect_timeout=timeout, read_timeout=timeout,
                              retries={"max_attempts": 2, "mode": "standard"})
            self._client = session.client("sqs", endpoint_url=cfg.aws_endpoint or None, config=timeouts)
        return self._client

    def _attributes(self) -> dict[str, str]:
        client = self._connect()
        url = self.config.queue_url
        if not urlparse(url).scheme:
            url = client.get_queue_url(QueueName=url)["QueueUrl"]
        result: dict[str, str] = client.get_queue_attributes(
            QueueUrl=url, AttributeNames=attribute_names(self.config)).get("Attributes", {})
        return result

    async def messages(self) -> int:
        from botocore import exceptions as bexc

        label = self.trigger.label
        try:
            attributes = await asyncio.wait_for(asyncio.to_thread(self._attributes), self.trigger.timeout_s * 4)
        except bexc.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if "NonExistentQueue" in code or code == "QueueDoesNotExist":
                raise NotFoundError(label, f"queue {self.config.queue_name!r} does not exist") from exc
            if code in ("InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDenied", "UnrecognizedClientException"):
                raise AuthError(label, f"AWS refused the credentials: {code}") from exc
            raise QueryError(label, f"sqs: {exc}") from exc
        except (TimeoutError, OSError, bexc.EndpointConnectionError, bexc.ConnectTimeoutError,
                bexc.ReadTimeoutError) as exc:
            raise UnreachableError(label, f"sqs unreachable: {str(exc) or type(exc).__name__}") from exc
        except bexc.NoCredentialsError as exc:
            raise AuthError(label, "no AWS credentials available") from exc
        try:
            return message_count(self.config, attributes)
        except ValueError as exc:
            raise QueryError(label, f"sqs: {exc}") from None

    async def metrics(self) -> Reading:
        value = sanitize(float(await self.messages()))
        return Reading({self.metric_specs()[0].name: value}, active=value > self.config.activation_queue_length)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()
