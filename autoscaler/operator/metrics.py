"""Prometheus metrics under KEDA's names (dashboards keep working) plus surge's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

TRIGGER_LABELS = ("namespace", "scaledObject", "scaler", "triggerIndex", "metric")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.value = Gauge("keda_scaler_metrics_value", "Current value of a trigger's metric", TRIGGER_LABELS,
                           registry=r)
        self.active = Gauge("keda_scaler_active", "1 when the trigger is active", TRIGGER_LABELS, registry=r)
        self.scaler_errors = Counter("keda_scaler_errors", "Errors reading a trigger", TRIGGER_LABELS, registry=r)
        self.object_errors = Counter("keda_scaled_object_errors", "Errors of a ScaledObject",
                                     ("namespace", "scaledObject"), registry=r)
        # gauges, as in KEDA: a histogram per trigger costs ~15 series each at 10,000 objects
        self.latency = Gauge("keda_scaler_metrics_latency_seconds", "Time to read the trigger's metric (its "
                             "batched polling cycle)", TRIGGER_LABELS, registry=r)
        self.loop_lag = Gauge("keda_internal_scale_loop_latency_seconds", "How late the last polling cycle "
                              "started after its due time", ("namespace", "type", "resource"), registry=r)
        self.desired = Gauge("surge_desired_replicas", "Replicas the engine wants", ("namespace", "scaledObject"),
                             registry=r)
        self.scales = Counter("surge_scale_writes", "Replica counts written to targets",
                              ("namespace", "scaledObject"), registry=r)
        self.forecast = Gauge("surge_forecast_value", "Forecast metric value at the predictive horizon and quantile",
                              ("namespace", "scaledObject", "trigger"), registry=r)
        self.forecast_reliable = Gauge("surge_forecast_reliable", "1 when the forecast beats seasonal naive",
                                       ("namespace", "scaledObject", "trigger"), registry=r)
        self.unsupported = Gauge("surge_unsupported_triggers", "Triggers of a ScaledObject surge does not evaluate",
                                 ("namespace", "scaledObject"), registry=r)
        self.schedule_lag = Histogram("surge_poll_lag_seconds", "How late polling cycles start behind schedule",
                                      buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10), registry=r)
