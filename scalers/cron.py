"""`cron`: hold `desiredReplicas` between a start and an end schedule, in a time zone.

Inside the window the metric is `desiredReplicas` against a target of 1 (so the HPA asks for
exactly that many pods) and the trigger is active; outside it is 0 and inactive (KEDA ≥ 2.18),
which leaves the decision to the other triggers and minReplicaCount. "Inside" is KEDA's test:
the end schedule fires before the start schedule does next, which handles windows across
midnight. Schedules use robfig/cron v3's grammar (scalers/cronspec.py), as KEDA does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from scalers.base import MetricSpec, Reading, Trigger, metric_name, parse_trigger_config
from scalers.config import param
from scalers.cronspec import CronSpecError, Schedule, load_zone, next_after, parse
from scalers.errors import FieldError

# Go's zero time.Time: what robfig's Next returns when nothing matches within five years.
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class CronConfig:
    start: str = param("start")
    end: str = param("end")
    timezone: str = param("timezone")
    desired_replicas: int = param("desiredReplicas")

    def validate(self) -> list[FieldError]:
        errors = []
        for key, expr in (("start", self.start), ("end", self.end)):
            try:
                parse(expr)
            except CronSpecError as exc:
                errors.append(FieldError(key, f"error parsing {key} schedule {expr!r}: {exc} (expected 5 fields: "
                                              "minute hour day-of-month month day-of-week, robfig/cron v3 syntax)"))
        if self.start == self.end:
            errors.append(FieldError("end", "start and end can not have exactly the same time input"))
        if self.desired_replicas == 0:
            errors.append(FieldError("desiredReplicas", "no desiredReplicas specified (expected a non-zero count)"))
        try:
            load_zone(self.timezone)
        except CronSpecError:
            errors.append(FieldError("timezone", f"got {self.timezone!r}, expected an IANA time zone such as "
                                                 "Europe/Berlin"))
        return errors

    @property
    def schedules(self) -> tuple[Schedule, Schedule]:
        return parse(self.start), parse(self.end)


def in_window(cfg: CronConfig, now: datetime) -> bool:
    """KEDA's GetMetricsAndActivity test at `now` (timezone-aware)."""
    local = now.astimezone(load_zone(cfg.timezone))
    start, end = cfg.schedules
    next_start = next_after(start, local) or _ZERO_TIME
    next_end = next_after(end, local) or _ZERO_TIME
    if next_start < next_end:
        return next_start < local < next_end
    return local > next_start or local < next_end


def reading_at(cfg: CronConfig, name: str, now: datetime) -> Reading:
    inside = in_window(cfg, now)
    return Reading({name: float(cfg.desired_replicas if inside else 0)}, active=inside)


def schedule_label(expr: str) -> str:
    """KEDA 2.20's parseCronTimeFormat."""
    return (expr.replace(" ", "").replace("*", "x").replace("/", "Sl").replace("?", "Qm").replace(",", "Cm"))


def keda_normalize(value: str) -> str:
    """KEDA's NormalizeString (/ . : % ( ) become -)."""
    for ch in "/.:%()":
        value = value.replace(ch, "-")
    return value


class CronScaler:
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.config = parse_trigger_config(CronConfig, trigger)

    def metric_specs(self) -> list[MetricSpec]:
        c = self.config
        base = keda_normalize(f"cron-{c.timezone}-{schedule_label(c.start)}-{schedule_label(c.end)}")
        return [MetricSpec(metric_name(self.trigger, base), 1.0, self.trigger.metric_type)]

    async def metrics(self, now: datetime | None = None) -> Reading:
        return reading_at(self.config, self.metric_specs()[0].name, now or datetime.now(UTC))

    async def close(self) -> None:
        return None
