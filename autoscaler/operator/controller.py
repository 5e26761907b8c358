"""The ScaledObject controller: one polling loop per ScaledObject, the engine decides, we apply.

Each loop reads its triggers in one batched cycle, asks `decide()` for replicas, writes them
through the target's scale subresource, and publishes status (conditions, health, last active
time, original replica count, and the engine state so a restart keeps cooldowns and windows).
Anything wrong with one object becomes its Ready=False condition, a Warning event and an error
metric; the other loops carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from autoscaler.engine.decide import Decision, EngineState, TriggerReading, decide
from autoscaler.engine.predictive import Predictive, apply_predictive
from autoscaler.engine.spec import scaling_spec, trigger_key
from autoscaler.manifests.keda import ScaledObject, duration_seconds
from autoscaler.operator.kube import Kube
from autoscaler.operator.metrics import Metrics
from autoscaler.operator.predictor import Predictor
from autoscaler.validate import issues_from
from scalers.base import Scaler, Trigger
from scalers.batch import poll_cycle
from scalers.errors import ScalerError
from scalers.registry import build_scaler, known_types

log = logging.getLogger("surge.operator")
WAKE_COALESCE_S = 0.05
DEFAULT_LEAD_S = 300.0  # predictive horizon without an explicit one: node boot + pod start, rounded up
Key = tuple[str, str]


class Invalid(Exception):
    """The ScaledObject cannot run as written; `reason` and message go to its Ready condition."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ScaledObjectController:
    def __init__(self, kube: Kube, metrics: Metrics | None = None, clock: Callable[[], float] = time.time,
                 predictor: Predictor | None = None) -> None:
        self.kube = kube
        self.predictor = predictor
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.loops: dict[Key, tuple[str, asyncio.Task[None]]] = {}
        self.states: dict[Key, EngineState] = {}
        self.targets: dict[tuple[str, str, str], Key] = {}
        self.original: dict[Key, int] = {}

    async def run(self) -> None:
        """Follow ScaledObjects forever; a broken watch is reopened."""
        while True:
            try:
                async for event in self.kube.watch_scaled_objects():
                    await self.on_event(event["type"], event["object"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the watch ends or breaks: reopen it
                log.warning("scaledobject watch ended: %s", exc)
                await asyncio.sleep(1)

    async def stop(self) -> None:
        for _, task in self.loops.values():
            task.cancel()
        await asyncio.gather(*(t for _, t in self.loops.values()), return_exceptions=True)
        self.loops.clear()

    async def on_event(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata", {})
        key = (meta.get("namespace", "default"), meta.get("name", ""))
        signature = json.dumps([obj.get("spec"), meta.get("annotations")], sort_keys=True, default=str)
        running = self.loops.get(key)
        if kind == "DELETED":
            if running:
                running[1].cancel()
                del self.loops[key]
            await self._restore(obj)
            self.targets = {t: k for t, k in self.targets.items() if k != key}
            return
        if running and running[0] == signature:
            return
        if running:
            running[1].cancel()
        self.loops[key] = (signature, asyncio.create_task(self._loop(key, obj), name=f"so/{key[0]}/{key[1]}"))

    async def _loop(self, key: Key, raw: dict[str, Any]) -> None:
        ns, name = key
        scalers: list[tuple[str, Scaler]] = []
        try:
            so, scalers = await self._prepare(key, raw)
            targets = {k: s.metric_specs()[0].target for k, s in scalers}
            spec = scaling_spec(so, targets)
            spec = dataclasses.replace(spec, triggers=tuple(t for t in spec.triggers if t.name in targets))
            state = self.states.get(key) or self._restored_state(raw) or EngineState(created_at=self.clock())
            wake = asyncio.Event()
            watchers = [asyncio.create_task(self._follow(s, wake)) for _, s in scalers if hasattr(s, "changes")]
            try:
                while True:
                    state = await self._cycle(so, raw, scalers, spec, state)
                    self.states[key] = state
                    # poll at pollingInterval, or at once when a trigger's source reports a change
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), so.spec.polling_interval)
                    if wake.is_set():
                        await asyncio.sleep(WAKE_COALESCE_S)  # let a burst of pushes land together
                        wake.clear()
            finally:
                for w in watchers:
                    w.cancel()
        except Invalid as exc:
            self.metrics.object_errors.labels(ns, name).inc()
            await self._report_invalid(raw, exc.reason, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let one object take the operator down
            log.exception("scaledobject %s/%s failed", ns, name)
            self.metrics.object_errors.labels(ns, name).inc()
            await self._report_invalid(raw, "InternalError", f"{type(exc).__name__}: {exc}")
        finally:
            for _, scaler in scalers:
                await scaler.close()

    @staticmethod
    async def _follow(scaler: Any, wake: asyncio.Event) -> None:
        try:
            async for _ in scaler.changes():
                wake.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # notifications are an optimisation: polling goes on without them
            log.info("change notifications off for %s: %s", scaler.trigger.label, exc)

    async def _prepare(self, key: Key, raw: dict[str, Any]) -> tuple[ScaledObject, list[tuple[str, Scaler]]]:
        try:
            so = ScaledObject.model_validate(raw)
        except ValidationError as exc:
            issues = "; ".join(f"{i.field}: {i.message}" for i in issues_from(exc))
            raise Invalid("ScaledObjectCheckFailed", issues) from None
        ref = so.spec.scale_target_ref
        target = (key[0], ref.kind, ref.name)
        owner = self.targets.setdefault(target, key)
        if owner != key:
            raise Invalid("ScaledObjectCheckFailed", f"the target {ref.kind}/{ref.name} is already managed by "
                                                     f"ScaledObject {owner[1]}")
        try:
            await self.kube.get_scale(key[0], ref.api_version, ref.kind, ref.name)
            env = await self.kube.target_env(key[0], ref.kind, ref.name, ref.env_source_container_name)
        except ApiException as exc:
            raise Invalid("ScaleTargetNotFound", f"{ref.kind}/{ref.name}: {exc.reason or exc.status} "
                                                 "(missing, or without a scale subresource)") from None
        scalers: list[tuple[str, Scaler]] = []
        for i, trig in enumerate(so.spec.triggers):
            if trig.type not in known_types():
                continue  # KEDA accepts it; surge does not implement it (reported by surge validate)
            params, provider = await self._auth(key[0], trig)
            try:
                scaler = build_scaler(Trigger(type=trig.type, name=trig.name or "", index=i, metadata=trig.metadata,
                                              auth_params=params, resolved_env=env, pod_identity=provider,
                                              metric_type=trig.metric_type or "AverageValue", namespace=key[0]))
            except ScalerError as exc:
                for _, s in scalers:
                    await s.close()
                raise Invalid("ScaledObjectCheckFailed", f"spec.triggers[{i}]: {exc.cause}") from None
            scalers.append((trigger_key(so, i), scaler))
        return so, scalers

    async def _auth(self, ns: str, trig: Any) -> tuple[dict[str, str], str]:
        ref = trig.authentication_ref
        if ref is None:
            return {}, ""
        auth = await self.kube.trigger_auth(ns, ref.kind, ref.name)
        if auth is None:
            raise Invalid("TriggerAuthenticationNotFound", f"{ref.kind} {ref.name!r} not found")
        spec = auth.get("spec") or {}
        params: dict[str, str] = {}
        for item in spec.get("secretTargetRef") or []:
            data = await self.kube.secret_data(ns, item["name"])
            if data is None or item["key"] not in data:
                raise Invalid("SecretNotFound", f"Secret {item['name']!r} (key {item['key']!r}) for parameter "
                                                f"{item['parameter']!r} not found")
            params[item["parameter"]] = data[item["key"]]
        provider = str((spec.get("podIdentity") or {}).get("provider", ""))
        return params, provider

    async def _cycle(self, so: ScaledObject, raw: dict[str, Any], scalers: list[tuple[str, Scaler]],
                     spec: Any, state: EngineState) -> EngineState:
        ns, name = so.metadata.namespace or "default", so.metadata.name
        ref = so.spec.scale_target_ref
        start = time.perf_counter()
        outcomes = await poll_cycle([s for _, s in scalers])
        self.metrics.latency.labels(ns, name).observe(time.perf_counter() - start)
        readings: dict[str, TriggerReading] = {}
        health: dict[str, Any] = {}
        for (key, scaler), outcome in zip(scalers, outcomes, strict=True):
            metric = scaler.metric_specs()[0].name
            labels = (ns, name, scaler.trigger.type, str(scaler.trigger.index), metric)
            if isinstance(outcome, Exception):
                readings[key] = TriggerReading(error=str(outcome))
                self.metrics.scaler_errors.labels(*labels).inc()
            else:
                value = outcome.values[metric]
                readings[key] = TriggerReading(value, outcome.active)
                self.metrics.value.labels(*labels).set(value)
                self.metrics.active.labels(*labels).set(1 if outcome.active else 0)
        try:
            current, ready = await self.kube.get_scale(ns, ref.api_version, ref.kind, ref.name)
        except ApiException as exc:
            raise Invalid("ScaleTargetNotFound", f"{ref.kind}/{ref.name}: {exc.reason or exc.status}") from None
        now = self.clock()
        d = decide(spec, readings, current, ready, state, now)
        if self.predictor is not None:
            d = await self._predictive(so, spec, readings, d, current, now)
        for key, _ in scalers:
            failures = d.state.failures.get(key, 0)
            health[key] = {"numberOfFailures": failures, "status": "Failing" if failures else "Happy"}
        self.metrics.desired.labels(ns, name).set(d.replicas if d.replicas is not None else current)
        if d.replicas is not None:
            await self.kube.set_scale(ns, ref.api_version, ref.kind, ref.name, d.replicas)
            self.metrics.scales.labels(ns, name).inc()
            reason = ("KEDAScaleTargetActivated" if current == 0 else
                      "KEDAScaleTargetDeactivated" if d.replicas == 0 else "SuccessfulRescale")
            await self.kube.event(ns, raw, reason, f"scaled {ref.kind}/{ref.name} from {current} to {d.replicas}: "
                                                   f"{d.reason}")
        original = self.original.setdefault((ns, name), (raw.get("status") or {}).get("originalReplicaCount", current))
        await self.kube.patch_status(ns, name, self._status(d, original, health, now))
        return d.state

    async def _predictive(self, so: ScaledObject, spec: Any, readings: dict[str, TriggerReading], d: Decision,
                          current: int, now: float) -> Decision:
        """Record the readings; in shadow/on mode, let the forecast raise the reactive decision."""
        assert self.predictor is not None
        ns, name = so.metadata.namespace or "default", so.metadata.name
        for key, r in readings.items():
            if r.error is None and r.value is not None:
                await self.predictor.observe(f"{ns}/{name}/{key}", r.value, now)
        p = so.spec.advanced.predictive if so.spec.advanced else None
        if p is None or p.mode == "off":
            return d
        horizon = duration_seconds(p.horizon) if p.horizon else DEFAULT_LEAD_S
        forecasts = {}
        for key in readings:
            fc = await self.predictor.forecast(f"{ns}/{name}/{key}", now, horizon, p.quantile,
                                               duration_seconds(p.min_history))
            forecasts[key] = fc
            if fc.value is not None:
                self.metrics.forecast.labels(ns, name, key).set(fc.value)
            self.metrics.forecast_reliable.labels(ns, name, key).set(1 if fc.reliable else 0)
        return apply_predictive(spec, Predictive(p.mode, p.quantile, p.max_scale_up_from_forecast), d, current,
                                forecasts)

    def _status(self, d: Decision, original: int, health: dict[str, Any], now: float) -> dict[str, Any]:
        conditions = [{"type": t, "status": "True" if c.status else "False", "reason": c.reason,
                       "message": c.message, "lastTransitionTime": _now_iso(now)} for t, c in d.conditions.items()]
        status: dict[str, Any] = {
            "conditions": conditions,
            "health": health,
            "originalReplicaCount": original,
            "surge": {"engineState": json.dumps(d.state.to_json()), "lastDecision": d.reason},
        }
        if d.state.last_active_at is not None:
            status["lastActiveTime"] = _now_iso(d.state.last_active_at)
        return status

    @staticmethod
    def _restored_state(raw: dict[str, Any]) -> EngineState | None:
        text = ((raw.get("status") or {}).get("surge") or {}).get("engineState")
        if not text:
            return None
        try:
            return EngineState.from_json(json.loads(text))
        except (ValueError, KeyError, TypeError):
            return None

    async def _report_invalid(self, raw: dict[str, Any], reason: str, message: str) -> None:
        meta = raw.get("metadata", {})
        ns, name = meta.get("namespace", "default"), meta.get("name", "")
        log.warning("scaledobject %s/%s: %s: %s", ns, name, reason, message)
        try:
            await self.kube.patch_status(ns, name, {"conditions": [
                {"type": "Ready", "status": "False", "reason": reason, "message": message,
                 "lastTransitionTime": _now_iso(self.clock())}]})
            await self.kube.event(ns, raw, reason, message, warning=True)
        except ApiException as exc:
            log.warning("could not report on %s/%s: %s", ns, name, exc)

    async def _restore(self, raw: dict[str, Any]) -> None:
        """restoreToOriginalReplicaCount: put the target back as it was when surge took it over."""
        try:
            so = ScaledObject.model_validate(raw)
        except ValidationError:
            return
        key = (so.metadata.namespace or "default", so.metadata.name)
        original = self.original.pop(key, (raw.get("status") or {}).get("originalReplicaCount"))
        if so.spec.advanced and so.spec.advanced.restore_to_original_replica_count and original is not None:
            ref = so.spec.scale_target_ref
            try:
                await self.kube.set_scale(so.metadata.namespace or "default", ref.api_version, ref.kind, ref.name,
                                          int(original))
            except ApiException as exc:
                log.warning("could not restore %s/%s: %s", ref.kind, ref.name, exc)
