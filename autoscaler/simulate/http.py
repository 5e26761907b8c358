"""The HTTP workload in the simulator: an HTTPScaledObject as the interceptor and the KEDA HTTP
add-on treat it.

The interceptor holds requests for a workload at zero until a pod is ready — the simulated FIFO
queue already holds work while no pod is ready — and gives up on a request after the route's
readiness timeout (`conditionWait`, or the failover's `timeoutSeconds`); without one the client's
own timeout (`Assumptions.http_timeout_s`) bounds the wait, as the add-on's default is to wait as
long as the request may. The scaling signal is the route's: concurrency (requests held plus
requests in flight at the pods, so a busy pod counts `pod_rate × service_time` of them) or the
request rate over the window. Both policies read it; they differ as the systems do: the add-on's
external-push activation takes its 500 ms count ping plus its 200 ms push interval, and beyond one
replica the HPA reads it every 15 s; surge is woken by the held request and provisions the node
in the same step.
"""

from __future__ import annotations

from typing import Any

from autoscaler.engine.spec import trigger_key
from autoscaler.interceptor.operator import generated_scaled_object
from autoscaler.interceptor.routes import Route, RouteError, from_http_scaled_object
from autoscaler.manifests.keda import ScaledObject
from autoscaler.simulate.signals import SimTrigger

ADDON_ACTIVATION_S = 0.7  # the add-on scaler's count ping (500 ms) + its StreamIsActive interval (200 ms)


class HTTPInputError(ValueError):
    pass


def http_workload(raw: dict[str, Any]) -> tuple[ScaledObject, list[SimTrigger], Route, list[str]]:
    """The ScaledObject the add-on's operator would write, the simulated trigger and the route."""
    name = (raw.get("metadata") or {}).get("name", "?")
    try:
        route = from_http_scaled_object(raw)
    except RouteError as exc:
        raise HTTPInputError(f"HTTPScaledObject/{name}: {exc}") from None
    so = ScaledObject.model_validate(generated_scaled_object(raw))
    key = trigger_key(so, 0)
    notes = []
    m = route.metric
    if m.concurrency:
        trigger = SimTrigger(key, "backlog+inflight", float(m.concurrency), 0.0)
    else:
        assert m.rate
        trigger = SimTrigger(key, "rate", float(m.rate), 0.0)
        if m.window_s != 60:
            notes.append(f"HTTPScaledObject/{name}: the request rate is simulated over a 60 s window, not "
                         f"{m.window_s:g} s")
    if route.fallback is not None:
        notes.append(f"HTTPScaledObject/{name}: requests past the readiness timeout count as dropped; the "
                     "failover Service is not simulated")
    return so, [trigger], route, notes
