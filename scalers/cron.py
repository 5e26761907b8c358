"""`cron`: hold `desiredReplicas` between a start and an end schedule, in a time zone.

Inside the window the metric is `desiredReplicas` against a target of 1 (so the HPA asks for
exactly that many pods) and the trigger is active; outside it is 1 and inactive, which lets the
other triggers or minReplicaCount decide. "Inside" means the end schedule fires before the start
schedule does next — the same test KEDA makes, which handles windows across midnight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from scalers.base import MetricSpec, Reading, Trigger, metric_name, normalize_name, parse_trigger_config
from scalers.config import param
from scalers.errors import FieldError


@dataclass(frozen=True, kw_only=True)
class CronConfig:
    start: str = param("start")
    end: str = param("end")
    timezone: str = param("timezone")
    desired_replicas: int = param("desiredReplicas")

    def validate(self) -> list[FieldError]:
        errors = []
        for key, expr in (("start", self.start), ("end", self.end)):
            if len(expr.split()) != 5 or not croniter.is_valid(expr):
                errors.append(FieldError(key, f"got {expr!r}, expected a 5-field cron expression (minute hour "
                                              "day-of-month month day-of-week)"))
        if self.start == self.end:
            errors.append(FieldError("end", "start and end can not have exactly the same time input"))
        if self.desired_replicas == 0:
            errors.append(FieldError("desiredReplicas", "no desiredReplicas specified (expected a non-zero count)"))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            errors.append(FieldError("timezone", f"got {self.timezone!r}, expected an IANA time zone such as "
                                                 "Europe/Berlin"))
        return errors


def in_window(cfg: CronConfig, now: datetime) -> bool:
    """Whether `now` (timezone-aware) lies in the window: the next end comes no later than the next start."""
    local = now.astimezone(ZoneInfo(cfg.timezone))
    next_start = croniter(cfg.start, local).get_next(datetime)
    next_end = croniter(cfg.end, local).get_next(datetime)
    return not next_start < next_end


def reading_at(cfg: CronConfig, name: str, now: datetime) -> Reading:
    inside = in_window(cfg, now)
    return Reading({name: float(cfg.desired_replicas if inside else 1)}, active=inside)


def _schedule_label(expr: str) -> str:
    return expr.replace(" ", "").replace("*", "x").replace("/", "Sl").replace("?", "Qm")


class CronScaler:
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.config = parse_trigger_config(CronConfig, trigger)

    def metric_specs(self) -> list[MetricSpec]:
        c = self.config
        base = f"cron-{c.timezone}-{_schedule_label(c.start)}-{_schedule_label(c.end)}"
        return [MetricSpec(metric_name(self.trigger, normalize_name(base)), 1.0, self.trigger.metric_type)]

    async def metrics(self, now: datetime | None = None) -> Reading:
        from datetime import UTC

        return reading_at(self.config, self.metric_specs()[0].name, now or datetime.now(UTC))

    async def close(self) -> None:
        return None
