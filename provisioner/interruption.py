"""EC2 interruption events from an SQS queue fed by EventBridge (as Karpenter's is).

Spot interruption warnings and rebalance recommendations mean "replace soon"; instance state
changes to stopping/stopped/shutting-down/terminated and AWS Health scheduled changes mean the
node is going. Messages that are not for us, or not understood, are deleted and logged — a
poisoned message must not come back forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("surge.interruption")
GOING = {"stopping", "stopped", "shutting-down", "terminated"}


@dataclass(frozen=True)
class Interruption:
    kind: str  # spot-interruption | rebalance | state-change | scheduled-change
    instance_id: str
    detail: str = ""


def parse(body: str) -> list[Interruption]:
    """The interruptions one EventBridge message announces (none when it is not one)."""
    try:
        msg = json.loads(body)
    except json.JSONDecodeError:
        return []
    if not isinstance(msg, dict):
        return []
    kind, detail = msg.get("detail-type"), msg.get("detail") or {}
    if kind == "EC2 Spot Instance Interruption Warning":
        return [Interruption("spot-interruption", detail.get("instance-id", ""), detail.get("instance-action", ""))]
    if kind == "EC2 Instance Rebalance Recommendation":
        return [Interruption("rebalance", detail.get("instance-id", ""))]
    if kind == "EC2 Instance State-change Notification" and detail.get("state") in GOING:
        return [Interruption("state-change", detail.get("instance-id", ""), detail["state"])]
    if kind == "AWS Health Event" and detail.get("service") == "EC2" and \
            detail.get("eventTypeCategory") == "scheduledChange":
        return [Interruption("scheduled-change", e.get("entityValue", ""), detail.get("eventTypeCode", ""))
                for e in detail.get("affectedEntities") or [] if str(e.get("entityValue", "")).startswith("i-")]
    return []


class InterruptionQueue:
    """Long-polls the queue; each call returns what arrived (and deletes those messages)."""

    def __init__(self, sqs: Any, queue_url: str, wait_s: int = 20) -> None:
        self.sqs, self.queue_url, self.wait_s = sqs, queue_url, wait_s

    async def __call__(self) -> list[Interruption]:
        response = await asyncio.to_thread(self.sqs.receive_message, QueueUrl=self.queue_url,
                                           MaxNumberOfMessages=10, WaitTimeSeconds=self.wait_s)
        out: list[Interruption] = []
        handles: list[dict[str, str]] = []
        for m in response.get("Messages") or []:
            found = parse(m.get("Body", ""))
            if not found:
                log.info("ignoring interruption-queue message %s", m.get("MessageId"))
            out += [f for f in found if f.instance_id]
            handles.append({"Id": str(len(handles)), "ReceiptHandle": m["ReceiptHandle"]})
        if handles:
            await asyncio.to_thread(self.sqs.delete_message_batch, QueueUrl=self.queue_url, Entries=handles)
        return out
