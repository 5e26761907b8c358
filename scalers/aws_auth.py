"""Which AWS credentials a trigger uses, decided as KEDA's GetAwsAuthorization decides it.

With `podIdentity.provider: aws` the operator's own identity is used, assuming
`podIdentity.roleArn` (with its `externalID`) or else an `awsRoleArn` auth parameter when given.
Otherwise `identityOwner: operator` (trigger metadata) means the operator's identity too; the
default (`pod`) takes, in this order, `awsRoleArn`, then `awsAccessKeyID` (or KEDA's older
spelling `awsAccessKeyId`) with `awsSecretAccessKey` and optional `awsSessionToken` from the
authentication, then `awsAccessKeyID` / `awsAccessKeyIDFromEnv` and `awsSecretAccessKeyFromEnv`
from the trigger metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scalers.base import Trigger
from scalers.errors import FieldError

NO_ACCESS_KEY = "awsAccessKeyID not found"  # KEDA's ErrAwsNoAccessKey
NO_SECRET_KEY = "awsSecretAccessKey not found"  # KEDA's ErrAwsNoSecretAccessKey


@dataclass(frozen=True)
class AwsAuthorization:
    role_arn: str = ""
    external_id: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""
    session_token: str = ""
    pod_identity_owner: bool = False  # credentials come from the trigger, not the operator
    using_pod_identity: bool = False


def aws_authorization(trigger: Trigger) -> tuple[AwsAuthorization, list[FieldError]]:
    """The credentials `trigger` asks for, or the KEDA error saying what is missing."""
    auth, meta, env = trigger.auth_params, trigger.metadata, trigger.resolved_env
    if trigger.pod_identity == "aws":
        pi = trigger.pod_identity_params
        if pi.get("roleArn"):
            return AwsAuthorization(role_arn=pi["roleArn"], external_id=pi.get("externalID", ""),
                                    using_pod_identity=True), []
        return AwsAuthorization(role_arn=auth.get("awsRoleArn", ""), using_pod_identity=True), []
    owner = meta.get("identityOwner", "")
    if owner == "operator":
        return AwsAuthorization(), []
    if owner not in ("", "pod"):
        return AwsAuthorization(), []  # KEDA ignores other values: no credentials of the trigger's own
    if auth.get("awsRoleArn"):
        return AwsAuthorization(role_arn=auth["awsRoleArn"], pod_identity_owner=True), []
    key_id = auth.get("awsAccessKeyID") or auth.get("awsAccessKeyId") or ""
    if key_id:
        found = AwsAuthorization(access_key_id=key_id, secret_access_key=auth.get("awsSecretAccessKey", ""),
                                 session_token=auth.get("awsSessionToken", ""), pod_identity_owner=True)
        if not found.secret_access_key:
            return found, [FieldError("awsSecretAccessKey", f"{NO_SECRET_KEY} (awsAccessKeyID is set in the "
                                                            "authentication; both go together)")]
        return found, []
    key_id = meta.get("awsAccessKeyID") or env.get(meta.get("awsAccessKeyIDFromEnv", ""), "")
    if not key_id:
        return AwsAuthorization(pod_identity_owner=True), [FieldError(
            "awsAccessKeyID", f"{NO_ACCESS_KEY}: give awsAccessKeyID+awsSecretAccessKey or awsRoleArn in the "
                              "authentication, podIdentity provider aws, or identityOwner: operator")]
    secret = env.get(meta.get("awsSecretAccessKeyFromEnv", ""), "") if meta.get("awsSecretAccessKeyFromEnv") else ""
    found = AwsAuthorization(access_key_id=key_id, secret_access_key=secret, pod_identity_owner=True)
    if not secret:
        return found, [FieldError("awsSecretAccessKeyFromEnv", NO_SECRET_KEY)]
    return found, []


def boto_session(auth: AwsAuthorization, region: str, endpoint: str | None, timeout_s: float) -> Any:
    """A boto3 Session holding `auth`'s credentials (assuming the role when one is named)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=auth.access_key_id or None, aws_secret_access_key=auth.secret_access_key or None,
        aws_session_token=auth.session_token or None, region_name=region)
    if auth.role_arn:
        timeouts = Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 2})
        extra = {"ExternalId": auth.external_id} if auth.external_id else {}
        creds = session.client("sts", endpoint_url=endpoint, config=timeouts).assume_role(
            RoleArn=auth.role_arn, RoleSessionName="surge", **extra)["Credentials"]
        session = boto3.session.Session(
            aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"], region_name=region)
    return session
