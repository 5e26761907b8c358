"""`aws-sqs-queue`: scale on the messages waiting in an SQS queue.

The metric counts visible messages, plus in-flight ones (received, not yet deleted) unless
`scaleOnInFlight` is false, plus delayed ones when `scaleOnDelayed` is true — in-flight messages
are work in progress, so counting them keeps busy consumers from being scaled away.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from scalers.base import MetricSpec, Reading, Trigger, metric_name, normalize_name, parse_trigger_config, sanitize
from scalers.config import METADATA_OR_ENV, Source, param
from scalers.errors import AuthError, ConfigError, FieldError, NotFoundError, QueryError, UnreachableError

AUTH: tuple[Source, ...] = ("authParams",)
ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@dataclass(frozen=True, kw_only=True)
class SqsConfig:
    queue_url: str = param("queueURL", METADATA_OR_ENV)
    queue_length: int = param("queueLength", default=5)
    activation_queue_length: int = param("activationQueueLength", default=0)
    aws_region: str = param("awsRegion", ("triggerMetadata", "authParams"))
    aws_endpoint: str = param("awsEndpoint", optional=True)
    scale_on_in_flight: bool = param("scaleOnInFlight", default=True)
    scale_on_delayed: bool = param("scaleOnDelayed", default=False)
    identity_owner: str = param("identityOwner", default="pod", enum=("pod", "operator"))
    access_key_id: str = param("awsAccessKeyID", AUTH, optional=True)
    secret_access_key: str = param("awsSecretAccessKey", AUTH, optional=True)
    session_token: str = param("awsSessionToken", AUTH, optional=True)
    role_arn: str = param("awsRoleArn", AUTH, optional=True)

    @property
    def queue_name(self) -> str:
        return queue_name(self.queue_url)

    def validate(self) -> list[FieldError]:
        errors = []
        if self.queue_length <= 0:
            errors.append(FieldError("queueLength", f"got {self.queue_length}, expected a positive integer"))
        if self.activation_queue_length < 0:
            errors.append(FieldError("activationQueueLength", f"got {self.activation_queue_length}, expected >= 0"))
        try:
            queue_name(self.queue_url)
        except ValueError as exc:
            errors.append(FieldError("queueURL", str(exc)))
        if bool(self.access_key_id) != bool(self.secret_access_key):
            errors.append(FieldError("awsSecretAccessKey", "awsAccessKeyID and awsSecretAccessKey go together"))
        return errors


def queue_name(url: str) -> str:
    """The queue name: last segment of `https://sqs.<region>.amazonaws.com/<account>/<name>`,
    or the value itself when it is a bare name."""
    parsed = urlparse(url)
    if not parsed.scheme:
        return url
    parts = parsed.path.split("/")
    if len(parts) != 3 or not parts[2]:
        raise ValueError(f"got {url!r}, expected https://<endpoint>/<account>/<queue name>")
    return parts[2]


def message_count(cfg: SqsConfig, attributes: dict[str, str]) -> int:
    wanted = ["ApproximateNumberOfMessages"]
    if cfg.scale_on_in_flight:
        wanted.append("ApproximateNumberOfMessagesNotVisible")
    if cfg.scale_on_delayed:
        wanted.append("ApproximateNumberOfMessagesDelayed")
    return sum(int(attributes.get(name, 0)) for name in wanted)


class SqsQueueScaler:
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.config = parse_trigger_config(SqsConfig, trigger)
        uses_pod_identity = trigger.pod_identity in ("aws", "aws-eks", "aws-kiam")
        if not (uses_pod_identity or self.config.access_key_id or self.config.role_arn):
            raise ConfigError(trigger.label, [FieldError(
                "awsAccessKeyID", "credentials needed: awsAccessKeyID+awsSecretAccessKey or awsRoleArn in the "
                "authentication, or podIdentity provider aws")])
        self._client: Any = None

    def metric_specs(self) -> list[MetricSpec]:
        name = metric_name(self.trigger, normalize_name(f"aws-sqs-{self.config.queue_name}"))
        return [MetricSpec(name, float(self.config.queue_length), self.trigger.metric_type)]

    def _connect(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            cfg = self.config
            session = boto3.session.Session(
                aws_access_key_id=cfg.access_key_id or None,
                aws_secret_access_key=cfg.secret_access_key or None,
                aws_session_token=cfg.session_token or None,
                region_name=cfg.aws_region,
            )
            timeouts = Config(connect_timeout=self.trigger.timeout_s, read_timeout=self.trigger.timeout_s,
                              retries={"max_attempts": 2, "mode": "standard"})
            if cfg.role_arn:
                creds = session.client("sts", endpoint_url=cfg.aws_endpoint or None, config=timeouts).assume_role(
                    RoleArn=cfg.role_arn, RoleSessionName="surge")["Credentials"]
                session = boto3.session.Session(
                    aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                    aws_session_token=creds["SessionToken"], region_name=cfg.aws_region)
            self._client = session.client("sqs", endpoint_url=cfg.aws_endpoint or None, config=timeouts)
        return self._client

    def _attributes(self) -> dict[str, str]:
        client = self._connect()
        url = self.config.queue_url
        if not urlparse(url).scheme:
            url = client.get_queue_url(QueueName=url)["QueueUrl"]
        result: dict[str, str] = client.get_queue_attributes(QueueUrl=url, AttributeNames=list(ATTRIBUTES))[
            "Attributes"]
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
            raise UnreachableError(label, f"sqs unreachable: {exc or type(exc).__name__}") from exc
        except bexc.NoCredentialsError as exc:
            raise AuthError(label, "no AWS credentials available") from exc
        return message_count(self.config, attributes)

    async def metrics(self) -> Reading:
        value = sanitize(float(await self.messages()))
        return Reading({self.metric_specs()[0].name: value}, active=value > self.config.activation_queue_length)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()
