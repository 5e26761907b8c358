"""The ScaledObject controller: one schedule for every ScaledObject, the engine decides, we apply.

Each ScaledObject is due every `pollingInterval` (or at once when a trigger's source reports a
change). One scheduler collects everything that is due and reads it in one batched cycle: the
Redis lists of many objects on one server cost one pipelined round trip, Kafka groups on one
cluster share metadata. Objects whose triggers cannot be batched get a cycle of their own, so a
slow trigger delays nobody else. Targets' replicas come from watched Deployments/StatefulSets
(a GET on the scale subresource for other kinds), and status is written only when it changes.

Anything wrong with one object becomes its Ready=False condition, a Warning event and an error
metric; the others carry on. A change to a TriggerAuthentication, ClusterTriggerAuthentication
or Secret that an object uses (or was waiting for) rebuilds that object's triggers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import heapq
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from autoscaler.engine.decide import Decision, EngineState, TriggerReading, decide
from autoscaler.engine.follow import ahead_protection_s, surge_defaults
from autoscaler.engine.predictive import Predictive, apply_predictive, forecast_replicas
from autoscaler.engine.reaction import next_due, on_change, pushes, watch_interval
from autoscaler.engine.spec import ScalingSpec, scaling_spec, trigger_key
from autoscaler.manifests.keda import ScaledObject, cluster_object_namespace, duration_seconds, target_of
from autoscaler.manifests.reader import ManifestError, check_object
from autoscaler.operator.kube import API_ERRORS, APPS_SCALE, Kube
from autoscaler.operator.leader import NotLeading
from autoscaler.operator.metrics import Metrics
from autoscaler.operator.predictor import Predictor
from autoscaler.redact import remember
from autoscaler.validate import issues_from
from provisioner.disruption import HANDOVER, handover_replicas, live_extras, parse_handover
from scalers.base import Reading, Scaler, Trigger, as_scaler_error
from scalers.batch import poll_cycle, shares_cycle
from scalers.errors import ScalerError
from scalers.registry import build_scaler, known_types

log = logging.getLogger("surge.operator")
DEFAULT_LEAD_S = 300.0  # predictive horizon without an explicit one: node boot + pod start, rounded up
BATCH_AHEAD_S = 0.02  # objects due this soon join the cycle starting now: fewer, larger batches
RETRY_S = (5.0, 300.0)  # back-off for objects waiting on something missing (first, cap)
WAITING_REASONS = {"ScaleTargetNotFound", "TriggerAuthenticationNotFound", "SecretNotFound"}
Key = tuple[str, str]
Dep = tuple[str, str, str]  # (kind, namespace, name); namespace "" for cluster-scoped


class Invalid(Exception):
    """The ScaledObject cannot run as written; `reason` and message go to its Ready condition."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


async def _close_scalers(entry: Entry) -> None:
    """Release an object's connections; a close that fails is logged, never left to stop the
    loop that called it (the other objects of a cycle would stay busy for ever)."""
    for _, scaler in entry.scalers:
        try:
            await scaler.close()
        except Exception as exc:
            log.info("closing %s: %s", scaler.trigger.label, str(exc) or type(exc).__name__)


def _now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Entry:
    """A running ScaledObject: its parsed spec, live triggers and remembered engine state."""

    key: Key
    raw: dict[str, Any]
    so: ScaledObject
    scalers: list[tuple[str, Scaler]]
    spec: ScalingSpec
    state: EngineState
    batchable: bool
    unsupported: list[str]
    due: float = 0.0
    token: int = 0
    busy: bool = False
    woken: bool = False
    closed: bool = False
    last_status: tuple[Any, ...] = ()
    predictive: bool = False
    last_desired: int | None = None
    fallback_on: bool = False
    _trigger_metrics: list[TriggerMetrics] | None = None
    _desired: Any = None
    _lag: Any = None
    transitions: dict[str, tuple[str, str]] = field(default_factory=dict)  # type → (status, time)
    watchers: list[asyncio.Task[None]] = field(default_factory=list)

    # labelled metric children, looked up once: at thousands of objects per second it shows
    def trigger_metrics(self, metrics: Metrics) -> list[TriggerMetrics]:
        if self._trigger_metrics is None:
            self._trigger_metrics = []
            for _, scaler in self.scalers:
                metric = scaler.metric_specs()[0].name
                labels = (*self.key, scaler.trigger.type, str(scaler.trigger.index), metric)
                self._trigger_metrics.append(TriggerMetrics(metric, metrics.value.labels(*labels),
                                                            metrics.active.labels(*labels),
                                                            metrics.scaler_errors.labels(*labels),
                                                            metrics.latency.labels(*labels)))
        return self._trigger_metrics

    def desired_gauge(self, metrics: Metrics) -> Any:
        if self._desired is None:
            self._desired = metrics.desired.labels(*self.key)
        return self._desired

    def observe_lag(self, seconds: float) -> None:
        if self._lag is not None:
            self._lag.set(seconds)


@dataclass
class TriggerMetrics:
    metric: str
    value: Any
    active: Any
    errors: Any
    latency: Any
    last: tuple[float, bool] | None = None
    last_error: str | None = None


class TargetCache:
    """spec.replicas and status.replicas of every Deployment and StatefulSet, from watches, and
    the extra replicas the provisioner's running handovers added (`surge.sh/handover`)."""

    def __init__(self) -> None:
        self.replicas: dict[tuple[str, str, str], tuple[int, int]] = {}
        self.handovers: dict[tuple[str, str, str], dict[str, tuple[int, float]]] = {}
        self.synced: set[str] = set()

    def apply(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace", ""), kind, meta.get("name", ""))
        if event_type == "DELETED":
            self.replicas.pop(key, None)
            self.handovers.pop(key, None)
        else:
            self.replicas[key] = (int((obj.get("spec") or {}).get("replicas") or 0),
                                  int((obj.get("status") or {}).get("replicas") or 0))
            entries = parse_handover((meta.get("annotations") or {}).get(HANDOVER))
            if entries:
                self.handovers[key] = entries
            else:
                self.handovers.pop(key, None)

    def get(self, ns: str, api_version: str, kind: str, name: str, now: float) -> tuple[int, int] | None:
        """The replicas the autoscaler owns: what a handover added is not its to scale down."""
        if api_version != "apps/v1" or kind not in self.synced:
            return None
        scale = self.replicas.get((ns, kind, name))
        extra = self.extra(ns, api_version, kind, name, now)
        if scale is None or not extra:
            return scale
        return max(0, scale[0] - extra), max(0, scale[1] - extra)

    def extra(self, ns: str, api_version: str, kind: str, name: str, now: float) -> int:
        entries = self.handovers.get((ns, kind, name)) if api_version == "apps/v1" else None
        return live_extras(entries, now) if entries else 0


class ScaledObjectController:
    def __init__(self, kube: Kube, metrics: Metrics | None = None, clock: Callable[[], float] = time.time,
                 predictor: Predictor | None = None, cluster_namespace: str | None = None,
                 timer: Callable[[], float] | None = None) -> None:
        self.kube = kube
        # the schedule's clock: the event loop's monotonic one, or a fake one that a test (the
        # differential test) advances tick by tick and then `kick`s
        self.timer = timer or (lambda: asyncio.get_running_loop().time())
        # where ClusterTriggerAuthentication Secrets live (KEDA_CLUSTER_OBJECT_NAMESPACE, else our own)
        self.cluster_namespace = cluster_namespace or cluster_object_namespace()
        self.predictor = predictor
        # told about every scale-up (namespace, kind, name, replicas added): the provisioner plans
        # nodes for those pods in the same step instead of waiting for them to go Pending
        # told of a scale-up (namespace, kind, name, replicas added, how long to protect nodes launched
        # for them: `engine.follow.ahead_protection_s`)
        self.on_scale_up: Callable[[str, str, str, int, float], Awaitable[Any]] | None = None
        # told what a reliable forecast says a target needs within the horizon (namespace, kind,
        # name, replicas, horizon seconds): consolidation keeps the capacity for it
        self.on_forecast: Callable[[str, str, str, int, float], Awaitable[Any]] | None = None
        self.handoffs: set[asyncio.Task[None]] = set()
        # fencing: called before every write batch; raises NotLeading when this replica may no
        # longer lead (LeaderElector.fence). Without leader election every write goes through.
        self.fence: Callable[[], None] = lambda: None
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.entries: dict[Key, Entry] = {}
        self.raw: dict[Key, dict[str, Any]] = {}
        self.signatures: dict[Key, int] = {}
        self.preparing: dict[Key, asyncio.Task[None]] = {}
        self.deps: dict[Key, set[Dep]] = {}
        self.dependents: dict[Dep, set[Key]] = {}  # the reverse index: watch events look up by dep
        self.retries: dict[Key, int] = {}
        self.states: dict[Key, EngineState] = {}
        self.targets: dict[tuple[str, str, str], Key] = {}
        self.target_of: dict[Key, tuple[str, str, str]] = {}
        self.original: dict[Key, int] = {}
        self.cache = TargetCache()
        self.heap: list[tuple[float, int, int, Key]] = []
        self.seq = itertools.count()
        self.kick = asyncio.Event()
        self.cycles: set[asyncio.Task[None]] = set()

    # --- following the API ----------------------------------------------------------------------
    async def run(self) -> None:
        """Follow ScaledObjects, their auth objects and targets, and run the schedule, forever."""
        follows = [self._follow_api("scaledobjects", self.kube.watch_scaled_objects, self.on_event),
                   self._follow_api("triggerauthentications", lambda: self.kube.watch_trigger_auths(False),
                                    self._on_auth("TriggerAuthentication")),
                   self._follow_api("clustertriggerauthentications", lambda: self.kube.watch_trigger_auths(True),
                                    self._on_auth("ClusterTriggerAuthentication")),
                   self._follow_api("secrets", self.kube.watch_secrets, self._on_auth("Secret"))]
        for kind in APPS_SCALE:
            follows.append(self._follow_api(kind, functools.partial(self.kube.watch_targets, kind),
                                            self._on_target(kind)))
        tasks = [asyncio.create_task(f) for f in follows] + [asyncio.create_task(self._schedule())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow_api(self, what: str, stream: Callable[[], AsyncIterator[dict[str, Any]]],
                          handle: Callable[[str, dict[str, Any]], Any]) -> None:
        """Apply one watch's events for ever; a broken or expired watch is reopened."""
        while True:
            try:
                async for event in stream():
                    if event["type"] == "SYNCED":  # the list is complete: an empty cache is now the truth
                        if what in APPS_SCALE:
                            self.cache.synced.add(what)
                        continue
                    obj = event.get("object") or {}
                    result = handle(event["type"], obj)
                    if asyncio.iscoroutine(result):
                        await result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s watch ended: %s", what, exc)
                await asyncio.sleep(1)

    def _on_target(self, kind: str) -> Callable[[str, dict[str, Any]], None]:
        def handle(event_type: str, obj: dict[str, Any]) -> None:
            self.cache.apply(kind, event_type, obj)
            meta = obj.get("metadata") or {}
            if event_type == "ADDED":  # a target that was missing may have arrived
                self._dependency_changed(("Target", meta.get("namespace", ""), f"{kind}/{meta.get('name', '')}"),
                                         event_type)
        return handle

    def _on_auth(self, kind: str) -> Callable[[str, dict[str, Any]], None]:
        def handle(event_type: str, obj: dict[str, Any]) -> None:
            meta = obj.get("metadata") or {}
            ns = "" if kind == "ClusterTriggerAuthentication" else meta.get("namespace", "")
            self._dependency_changed((kind, ns, meta.get("name", "")), event_type)
        return handle

    def _dependency_changed(self, dep: Dep, event_type: str) -> None:
        """Rebuild running objects whose auth changed or went away, and waiting objects whose
        missing piece appeared (watches replay ADDED for everything that exists when they open)."""
        for key in list(self.dependents.get(dep, ())):
            if key not in self.raw:
                continue
            running = key in self.entries
            if (running and event_type in ("MODIFIED", "DELETED") and dep[0] != "Target") or \
                    (not running and event_type != "DELETED"):
                log.info("scaledobject %s/%s: %s %s changed, rebuilding its triggers", *key, dep[0], dep[2])
                self._start(key, self.raw[key])

    async def on_event(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata", {})
        key = (meta.get("namespace", "default"), meta.get("name", ""))
        if kind == "DELETED":
            await self._drop(key)
            self.raw.pop(key, None)
            self.signatures.pop(key, None)
            self._forget_deps(key)
            self.states.pop(key, None)
            await self._restore(obj)
            target = self.target_of.pop(key, None)
            if target is not None and self.targets.get(target) == key:
                del self.targets[target]
            return
        # a hash, not the text: ten thousand specs' JSON would be megabytes kept only to compare
        signature = hash(json.dumps([obj.get("spec"), meta.get("annotations")], sort_keys=True, default=str))
        self.raw[key] = obj
        if self.signatures.get(key) == signature:
            return
        self.signatures[key] = signature
        self.retries.pop(key, None)
        self._start(key, obj)

    def _start(self, key: Key, raw: dict[str, Any]) -> None:
        running = self.preparing.pop(key, None)
        if running is not None:
            running.cancel()
        self.preparing[key] = asyncio.create_task(self._setup(key, raw), name=f"so/{key[0]}/{key[1]}")

    async def _drop(self, key: Key) -> None:
        running = self.preparing.pop(key, None)
        if running is not None:
            running.cancel()
        entry = self.entries.pop(key, None)
        if entry is not None:
            await self._close(entry)

    async def _close(self, entry: Entry) -> None:
        entry.closed = True
        for w in entry.watchers:
            w.cancel()
        if not entry.busy:  # a running cycle closes its scalers when it ends
            await _close_scalers(entry)

    async def stop(self) -> None:
        for task in [*self.preparing.values(), *self.cycles]:
            task.cancel()
        await asyncio.gather(*self.preparing.values(), *self.cycles, return_exceptions=True)
        self.preparing.clear()
        for key in list(self.entries):
            await self._drop(key)
        # a later run() (leadership regained) must rebuild every object its watches replay
        self.signatures.clear()
        self.retries.clear()

    # --- building an object ---------------------------------------------------------------------
    async def _setup(self, key: Key, raw: dict[str, Any]) -> None:
        ns, name = key
        old = self.entries.pop(key, None)
        if old is not None:
            self.states[key] = old.state
            await self._close(old)
        self._forget_deps(key)
        try:
            entry = await self._prepare(key, raw)
        except asyncio.CancelledError:
            raise
        except Invalid as exc:
            self.metrics.object_errors.labels(ns, name).inc()
            await self._report_invalid(raw, exc.reason, str(exc))
            if exc.reason in WAITING_REASONS:
                await self._retry_later(key, raw)
            return
        except Exception as exc:  # never let one object take the operator down
            log.exception("scaledobject %s/%s failed", ns, name)
            self.metrics.object_errors.labels(ns, name).inc()
            await self._report_invalid(raw, "InternalError", f"{type(exc).__name__}: {exc}")
            await self._retry_later(key, raw)
            return
        finally:
            if self.preparing.get(key) is asyncio.current_task():
                del self.preparing[key]
        self.retries.pop(key, None)
        self.entries[key] = entry
        entry._lag = self.metrics.loop_lag.labels(ns, "scaledobject", name)
        # readings are kept as history only where a forecast will use them (shadow or on)
        p = entry.so.spec.advanced.predictive if entry.so.spec.advanced else None
        entry.predictive = p is not None and p.mode != "off"
        if entry.unsupported:
            message = f"not evaluated by surge (unsupported trigger types): {', '.join(entry.unsupported)}"
            self.metrics.unsupported.labels(ns, name).set(len(entry.unsupported))
            await self._safely(self.kube.event(ns, raw, "UnsupportedTrigger", message, warning=True))
        entry.watchers = [asyncio.create_task(self._follow_changes(entry, s)) for _, s in entry.scalers
                          if pushes(s)]
        self._due(entry, self.timer())

    async def _retry_later(self, key: Key, raw: dict[str, Any]) -> None:
        """Objects waiting on something missing are retried with back-off (and at once when the
        missing object appears, through the watches)."""
        n = self.retries[key] = self.retries.get(key, 0) + 1
        await asyncio.sleep(min(RETRY_S[1], RETRY_S[0] * 2 ** (n - 1)))
        if self.raw.get(key) is raw:
            self.preparing.pop(key, None)
            self._start(key, raw)

    def _depend(self, key: Key, dep: Dep) -> None:
        self.deps.setdefault(key, set()).add(dep)
        self.dependents.setdefault(dep, set()).add(key)

    def _forget_deps(self, key: Key) -> None:
        for dep in self.deps.pop(key, ()):
            keys = self.dependents.get(dep)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.dependents[dep]

    async def _prepare(self, key: Key, raw: dict[str, Any]) -> Entry:
        try:
            # the reader's depth and size limits, for objects that come from the API server as JSON
            check_object(raw, f"ScaledObject {key[0]}/{key[1]}")
            so = ScaledObject.model_validate(raw)
        except ManifestError as exc:
            raise Invalid("ScaledObjectCheckFailed", str(exc)) from None
        except ValidationError as exc:
            issues = "; ".join(f"{i.field}: {i.message}" for i in issues_from(exc))
            raise Invalid("ScaledObjectCheckFailed", issues) from None
        ref = so.spec.scale_target_ref
        target = (key[0], ref.kind, ref.name)
        self._depend(key, ("Target", key[0], f"{ref.kind}/{ref.name}"))
        owner = self.targets.get(target)
        if owner is not None and owner != key and owner in self.raw:
            raise Invalid("ScaledObjectCheckFailed", f"the target {ref.kind}/{ref.name} is already managed by "
                                                     f"ScaledObject {owner[1]}")
        previous = self.target_of.get(key)
        if previous is not None and self.targets.get(previous) == key:
            del self.targets[previous]
        self.targets[target], self.target_of[key] = key, target
        try:
            await self.kube.get_scale(key[0], ref.api_version, ref.kind, ref.name)
            env = await self.kube.target_env(key[0], ref.kind, ref.name, ref.env_source_container_name)
        except ApiException as exc:
            if exc.status != 404:
                raise
            raise Invalid("ScaleTargetNotFound", f"{ref.kind}/{ref.name}: {exc.reason or exc.status} "
                                                 "(missing, or without a scale subresource)") from None
        scalers: list[tuple[str, Scaler]] = []
        unsupported: list[str] = []
        try:
            for i, trig in enumerate(so.spec.triggers):
                if trig.type not in known_types():
                    # KEDA knows it, surge does not implement it: said in status and an event
                    unsupported.append(f"spec.triggers[{i}] (type {trig.type!r})")
                    continue
                params, provider, identity = await self._auth(key, trig)
                try:
                    scaler = build_scaler(Trigger(
                        type=trig.type, name=trig.name or "", index=i, metadata=trig.metadata, auth_params=params,
                        resolved_env=env, pod_identity=provider, pod_identity_params=identity,
                        metric_type=trig.metric_type or "AverageValue", namespace=key[0],
                        metric_type_given=trig.metric_type is not None, scale_target=target_of(so),
                        as_metric_source=so.spec.uses_modifiers))
                except ScalerError as exc:
                    raise Invalid("ScaledObjectCheckFailed", f"spec.triggers[{i}]: {exc.cause}") from None
                scalers.append((trigger_key(so, i), scaler))
        except BaseException:
            for _, s in scalers:
                await s.close()
            raise
        if not scalers and unsupported:
            raise Invalid("UnsupportedTrigger", f"no trigger surge can evaluate: {', '.join(unsupported)}")
        targets = {k: s.metric_specs()[0].target for k, s in scalers}
        spec = surge_defaults(scaling_spec(so, targets))  # surge's scale-down unless the user set one
        spec = dataclasses.replace(spec, triggers=tuple(t for t in spec.triggers if t.name in targets))
        state = self.states.get(key) or self._restored_state(raw) or EngineState(created_at=self.clock())
        batchable = all(shares_cycle(s) for _, s in scalers)
        return Entry(key, raw, so, scalers, spec, state, batchable, unsupported)

    async def _auth(self, key: Key, trig: Any) -> tuple[dict[str, str], str, dict[str, str]]:
        ns = key[0]
        ref = trig.authentication_ref
        if ref is None:
            return {}, "", {}
        cluster = ref.kind == "ClusterTriggerAuthentication"
        self._depend(key, (ref.kind if cluster else "TriggerAuthentication", "" if cluster else ns, ref.name))
        auth = await self.kube.trigger_auth(ns, ref.kind, ref.name)
        if auth is None:
            raise Invalid("TriggerAuthenticationNotFound", f"{ref.kind} {ref.name!r} not found")
        spec = auth.get("spec") or {}
        params: dict[str, str] = {}
        # as KEDA: a ClusterTriggerAuthentication's Secrets are read from the cluster object namespace
        secret_ns = self.cluster_namespace if cluster else ns
        for item in spec.get("secretTargetRef") or []:
            self._depend(key, ("Secret", secret_ns, item["name"]))
            if not self.kube.may_read_secrets(secret_ns):
                raise Invalid("SecretNotFound", f"Secret {item['name']!r} for parameter {item['parameter']!r}: surge "
                                                f"reads Secrets only in namespaces {list(self.kube.secret_namespaces)} "
                                                "(helm value rbac.secretNamespaces)")
            data = await self.kube.secret_data(secret_ns, item["name"])
            if data is None or item["key"] not in data:
                raise Invalid("SecretNotFound", f"Secret {item['name']!r} (key {item['key']!r}) in namespace "
                                                f"{secret_ns!r} for parameter {item['parameter']!r} not found")
            params[item["parameter"]] = data[item["key"]]
            remember(data[item["key"]])  # masked in every log line from now on
        identity = dict(spec.get("podIdentity") or {})
        provider = str(identity.pop("provider", ""))
        return params, provider, {k: str(v) for k, v in identity.items() if isinstance(v, str)}

    # --- the schedule -----------------------------------------------------------------------------
    def _due(self, entry: Entry, when: float) -> None:
        entry.token += 1
        entry.due = when
        heapq.heappush(self.heap, (when, next(self.seq), entry.token, entry.key))
        self.kick.set()

    async def _follow_changes(self, entry: Entry, scaler: Any) -> None:
        try:
            async for _ in scaler.changes():
                if entry.busy:
                    entry.woken = True
                elif not entry.closed:
                    self._due(entry, on_change(entry.due, self.timer()))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # notifications are an optimisation: polling goes on without them
            log.info("change notifications off for %s: %s", scaler.trigger.label, exc)

    async def _schedule(self) -> None:
        while True:
            self.kick.clear()
            now = self.timer()
            due: list[Entry] = []
            while self.heap and self.heap[0][0] <= now + BATCH_AHEAD_S:
                when, _, token, key = heapq.heappop(self.heap)
                entry = self.entries.get(key)
                if entry is None or entry.token != token or entry.busy or entry.closed:
                    continue
                lag = max(0.0, now - when)
                self.metrics.schedule_lag.observe(lag)
                entry.observe_lag(lag)
                entry.busy = True
                due.append(entry)
            batch = [e for e in due if e.batchable]
            groups = ([batch] if batch else []) + [[e] for e in due if not e.batchable]
            for group in groups:
                task = asyncio.create_task(self._run_cycle(group))
                self.cycles.add(task)
                task.add_done_callback(self.cycles.discard)
            timeout = self.heap[0][0] - self.timer() if self.heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.kick.wait(), timeout)

    async def _run_cycle(self, entries: list[Entry]) -> None:
        try:
            scalers = [s for e in entries for _, s in e.scalers]
            start = time.perf_counter()
            outcomes = await poll_cycle(scalers)
            took = time.perf_counter() - start
            at = 0
            writes = []
            for e in entries:
                n = len(e.scalers)
                write = self._apply(e, outcomes[at:at + n], took)
                if write is not None:
                    writes.append(write)
                at += n
            await asyncio.gather(*writes)
        finally:
            now = self.timer()
            for e in entries:
                e.busy = False
                if e.closed:
                    await _close_scalers(e)
                    continue
                watch = watch_interval(t.type for t in e.so.spec.triggers)
                self._due(e, next_due(e.due, e.so.spec.polling_interval, now, e.woken, watch))
                e.woken = False

    def _apply(self, entry: Entry, outcomes: list[Any], took: float) -> Coroutine[Any, Any, None] | None:
        """Decide without I/O when the target's replicas are cached and nothing needs writing (the
        common case at scale); otherwise return the rest of the cycle as a coroutine."""
        try:
            readings, events = self._readings(entry, outcomes, took)
            ref = entry.so.spec.scale_target_ref
            scale = self.cache.get(entry.key[0], ref.api_version, ref.kind, ref.name, self.clock())
            work: Coroutine[Any, Any, None] | None
            if scale is None or (self.predictor is not None and entry.predictive):
                work = self._slow_cycle(entry, readings, scale)
            else:
                now = self.clock()
                d = decide(entry.spec, readings, scale[0], scale[1], entry.state, now)
                events += self._fallback_events(entry, d)
                work = self._conclude(entry, d, scale, now)
            if events:
                work = self._with_events(entry, events, work)
            return None if work is None else self._guard(entry, work)
        except Exception as exc:
            return self._guard(entry, None, exc)

    def _readings(self, entry: Entry, outcomes: list[Any], took: float
                  ) -> tuple[dict[str, TriggerReading], list[tuple[str, str]]]:
        """This poll's readings, and the Warning events to send: KEDA's KEDAScalerFailed for a
        trigger that starts failing or fails differently (a repeat of the same error is only
        counted — the API server's event aggregation would fold it anyway)."""
        readings: dict[str, TriggerReading] = {}
        events: list[tuple[str, str]] = []
        for (key, scaler), outcome, gauges in zip(entry.scalers, outcomes, entry.trigger_metrics(self.metrics),
                                                  strict=True):
            gauges.latency.set(took)
            if not isinstance(outcome, Reading):  # any failure of the read, whatever raised it
                error = str(as_scaler_error(scaler.trigger, outcome)) if isinstance(outcome, BaseException) \
                    else f"trigger {scaler.trigger.label}: read returned {type(outcome).__name__}"
                readings[key] = TriggerReading(error=error)
                gauges.errors.inc()
                if error != gauges.last_error:
                    events.append(("KEDAScalerFailed", error))
                    gauges.last_error = error
                continue
            gauges.last_error = None
            value = outcome.values[gauges.metric]
            readings[key] = TriggerReading(value, outcome.active)
            if (value, outcome.active) != gauges.last:  # a gauge write is dearer than the comparison
                gauges.value.set(value)
                gauges.active.set(1 if outcome.active else 0)
                gauges.last = (value, outcome.active)
        return readings, events

    @staticmethod
    def _fallback_events(entry: Entry, d: Decision) -> list[tuple[str, str]]:
        """KEDA's Normal events when the fallback engages or lets go."""
        fallback = d.conditions.get("Fallback")
        now_on = bool(fallback and fallback.status)
        was_on, entry.fallback_on = entry.fallback_on, now_on
        if now_on and not was_on:
            return [("ScaledObjectFallbackActivated", f"fallback engaged: {fallback.message if fallback else ''}")]
        if was_on and not now_on:
            return [("ScaledObjectFallbackDeactivated", "all triggers read again; fallback released")]
        return []

    async def _with_events(self, entry: Entry, events: list[tuple[str, str]],
                           work: Coroutine[Any, Any, None] | None) -> None:
        ns = entry.key[0]
        for reason, message in events:
            await self._safely(self.kube.event(ns, entry.raw, reason, message,
                                               warning=reason == "KEDAScalerFailed"))
        if work is not None:
            await work

    async def _slow_cycle(self, entry: Entry, readings: dict[str, TriggerReading],
                          scale: tuple[int, int] | None) -> None:
        ns, _ = entry.key
        ref = entry.so.spec.scale_target_ref
        if scale is None:
            try:
                scale = await self.kube.get_scale(ns, ref.api_version, ref.kind, ref.name)
            except ApiException as exc:
                if exc.status != 404:
                    raise  # the API server failing is not the target missing: try again next poll
                raise Invalid("ScaleTargetNotFound", f"{ref.kind}/{ref.name}: {exc.reason or exc.status}") from None
        now = self.clock()
        d = decide(entry.spec, readings, scale[0], scale[1], entry.state, now)
        if self.predictor is not None and entry.predictive:
            d = await self._predictive(entry.so, entry.spec, readings, d, scale[0], now)
        for reason, message in self._fallback_events(entry, d):
            await self._safely(self.kube.event(ns, entry.raw, reason, message))
        write = self._conclude(entry, d, scale, now)
        if write is not None:
            await write

    def _conclude(self, entry: Entry, d: Decision, scale: tuple[int, int], now: float
                  ) -> Coroutine[Any, Any, None] | None:
        current, _ = scale
        desired = d.replicas if d.replicas is not None else current
        if desired != entry.last_desired:
            entry.desired_gauge(self.metrics).set(desired)
            entry.last_desired = desired
        original = self.original.setdefault(
            entry.key, (entry.raw.get("status") or {}).get("originalReplicaCount", current))
        marker = self._marker(entry, d, original)
        if d.replicas is None and marker == entry.last_status:
            entry.state = self.states[entry.key] = d.state
            return None
        return self._guard(entry, self._write(entry, d, scale, original, marker, now))

    async def _write(self, entry: Entry, d: Decision, scale: tuple[int, int], original: int,
                     marker: tuple[Any, ...], now: float) -> None:
        ns, name = entry.key
        ref = entry.so.spec.scale_target_ref
        current, ready = scale
        self.fence()
        if d.replicas is not None:
            # while the provisioner hands a draining node's pods over, its extra replicas stay on top
            extra = self.cache.extra(ns, ref.api_version, ref.kind, ref.name, now)
            written = handover_replicas(d.replicas, [extra])
            await self.kube.set_scale(ns, ref.api_version, ref.kind, ref.name, written)
            if ref.api_version == "apps/v1" and ref.kind in APPS_SCALE:
                self.cache.replicas[(ns, ref.kind, ref.name)] = (written, ready + extra)
            self.metrics.scales.labels(ns, name).inc()
            if self.on_scale_up is not None and d.replicas > current:
                task = asyncio.create_task(self._hand_off(ns, ref.kind, ref.name, d.replicas - current,
                                                          ahead_protection_s(entry.spec)))
                self.handoffs.add(task)
                task.add_done_callback(self.handoffs.discard)
            reason = ("KEDAScaleTargetActivated" if current == 0 else
                      "KEDAScaleTargetDeactivated" if d.replicas == 0 else "SuccessfulRescale")
            await self._safely(self.kube.event(ns, entry.raw, reason, f"scaled {ref.kind}/{ref.name} from "
                                                                      f"{current} to {d.replicas}: {d.reason}"))
        if marker != entry.last_status:
            self.fence()
            await self.kube.patch_status(ns, name, self._status_body(entry, d, original, now))
            entry.last_status = marker
        entry.state = self.states[entry.key] = d.state

    async def _guard(self, entry: Entry, work: Coroutine[Any, Any, None] | None,
                     error: Exception | None = None) -> None:
        """One object's failure stays its own: a condition, an event, a metric."""
        ns, name = entry.key
        try:
            if work is not None:
                await work
            elif error is not None:
                raise error
        except asyncio.CancelledError:
            raise
        except NotLeading as exc:  # the write was dropped; the next leader decides afresh
            log.info("scaledobject %s/%s: %s", ns, name, exc)
        except Invalid as exc:  # e.g. the target went away: stop polling, wait for it with back-off
            self.metrics.object_errors.labels(ns, name).inc()
            await self._report_invalid(entry.raw, exc.reason, str(exc))
            if self.entries.get(entry.key) is entry:
                del self.entries[entry.key]
                entry.closed = True
                for w in entry.watchers:
                    w.cancel()
                self.preparing[entry.key] = asyncio.create_task(self._retry_later(entry.key, entry.raw))
        except Exception as exc:  # this object's cycle failed; it runs again at its next poll
            log.error("scaledobject %s/%s cycle failed", ns, name, exc_info=exc)
            self.metrics.object_errors.labels(ns, name).inc()
            await self._report_invalid(entry.raw, "InternalError", f"{type(exc).__name__}: {exc}")
            entry.last_status = ()

    async def _hand_off(self, ns: str, kind: str, name: str, adding: int, protect_s: float) -> None:
        assert self.on_scale_up is not None
        try:
            await self.on_scale_up(ns, kind, name, adding, protect_s)
        except Exception as exc:  # the pods still go Pending and get nodes the usual way
            log.warning("hand-off of %d new %s/%s pods to the provisioner failed: %s", adding, kind, name, exc)

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
        wanted, _ = forecast_replicas(spec, forecasts)
        if self.on_forecast is not None and wanted is not None and p.mode == "on":
            ref = so.spec.scale_target_ref
            task = asyncio.create_task(self._tell_forecast(ns, ref.kind, ref.name, min(wanted, spec.max_replicas),
                                                           horizon))
            self.handoffs.add(task)
            task.add_done_callback(self.handoffs.discard)
        return apply_predictive(spec, Predictive(p.mode, p.quantile, p.max_scale_up_from_forecast), d, current,
                                forecasts)

    async def _tell_forecast(self, ns: str, kind: str, name: str, replicas: int, horizon: float) -> None:
        assert self.on_forecast is not None
        try:
            await self.on_forecast(ns, kind, name, replicas, horizon)
        except Exception as exc:  # consolidation just goes on without the forecast
            log.info("could not pass the forecast for %s/%s on: %s", kind, name, exc)

    # --- status -----------------------------------------------------------------------------------
    @staticmethod
    def _marker(entry: Entry, d: Decision, original: int) -> tuple[Any, ...]:
        """Changes only when status should be written: when a recommendation run, a scale event, a
        failure count, activity or a condition changes — not when a run of equal recommendations
        merely gets longer (a restart extends the last run, see `_restored_state`)."""
        hpa = d.state.hpa
        return (tuple(r for _, r in hpa.recommendations), tuple(hpa.scale_up_events),
                tuple(hpa.scale_down_events), tuple(sorted(d.state.failures.items())), d.active,
                tuple((t, c.status, c.reason, c.message) for t, c in d.conditions.items()), original)

    def _status_body(self, entry: Entry, d: Decision, original: int, now: float) -> dict[str, Any]:
        health = {}
        for key, _ in entry.scalers:
            failures = d.state.failures.get(key, 0)
            health[key] = {"numberOfFailures": failures, "status": "Failing" if failures else "Happy"}
        conditions = []
        for t, c in d.conditions.items():
            flag = "Unknown" if c.status is None else "True" if c.status else "False"
            message = c.message
            if t == "Ready" and entry.unsupported:
                message = (message + "; " if message else "") + \
                    f"not evaluated by surge: {', '.join(entry.unsupported)}"
            # every flip changes the marker, so looking at transitions only when writing is exact
            previous = entry.transitions.get(t)
            since = previous[1] if previous and previous[0] == flag else _now_iso(now)
            entry.transitions[t] = (flag, since)
            conditions.append({"type": t, "status": flag, "reason": c.reason, "message": message,
                               "lastTransitionTime": since})
        status: dict[str, Any] = {
            "conditions": conditions,
            "health": health,
            "originalReplicaCount": original,
            "surge": {"engineState": json.dumps(d.state.to_json()), "lastDecision": d.reason,
                      "unsupportedTriggers": entry.unsupported or None},
        }
        if d.state.last_active_at is not None:
            status["lastActiveTime"] = _now_iso(d.state.last_active_at)
        return status

    def _restored_state(self, raw: dict[str, Any]) -> EngineState | None:
        """Engine state from status, its history brought up to now: status is written when the
        history changes shape, so what it holds was still true when the operator stopped."""
        status = raw.get("status") or {}
        text = (status.get("surge") or {}).get("engineState")
        if not text:
            return None
        try:
            state = EngineState.from_json(json.loads(text))
        except (ValueError, KeyError, TypeError):
            return None
        now = self.clock()
        recs = state.hpa.recommendations
        if recs and recs[-1][0] < now:
            recs.append((now, recs[-1][1]))
        active = any(c.get("type") == "Active" and c.get("status") == "True" for c in status.get("conditions") or [])
        if active and state.last_active_at is not None:
            state.last_active_at = max(state.last_active_at, now)
        return state

    async def _safely(self, call: Any) -> None:
        try:
            self.fence()
            await call
        except NotLeading:
            call.close()
        except API_ERRORS as exc:
            log.warning("kubernetes call failed: %s", str(exc) or type(exc).__name__)

    async def _report_invalid(self, raw: dict[str, Any], reason: str, message: str) -> None:
        meta = raw.get("metadata", {})
        ns, name = meta.get("namespace", "default"), meta.get("name", "")
        log.warning("scaledobject %s/%s: %s: %s", ns, name, reason, message)
        try:
            self.fence()
            await self.kube.patch_status(ns, name, {"conditions": [
                {"type": "Ready", "status": "False", "reason": reason, "message": message,
                 "lastTransitionTime": _now_iso(self.clock())}]})
            await self.kube.event(ns, raw, reason, message, warning=True)
        except NotLeading:
            pass
        except API_ERRORS as exc:
            log.warning("could not report on %s/%s: %s", ns, name, str(exc) or type(exc).__name__)

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
                self.fence()
                await self.kube.set_scale(so.metadata.namespace or "default", ref.api_version, ref.kind, ref.name,
                                          int(original))
            except NotLeading:
                pass
            except API_ERRORS as exc:
                log.warning("could not restore %s/%s: %s", ref.kind, ref.name, exc)
