"""From a ScaledObject manifest (and its scalers' metric targets) to the engine's plain ScalingSpec."""

from __future__ import annotations

from collections.abc import Mapping

from autoscaler.engine.decide import Fallback, Modifiers, ScalingSpec, TriggerSpec
from autoscaler.engine.hpa import DEFAULT_SCALE_DOWN, DEFAULT_SCALE_UP, DEFAULT_TOLERANCE, Behavior, Policy, Rules
from autoscaler.manifests.keda import HPAScalingRules, ScaledObject


def trigger_key(so: ScaledObject, index: int) -> str:
    """How the engine names a trigger: its name, or type#index for unnamed ones."""
    trig = so.spec.triggers[index]
    return trig.name or f"{trig.type}#{index}"


def _rules(raw: HPAScalingRules | None, default: Rules) -> Rules:
    if raw is None:
        return default
    policies = (tuple(Policy(p.type, p.value, p.period_seconds) for p in raw.policies)
                if raw.policies is not None else default.policies)
    return Rules(
        raw.stabilization_window_seconds if raw.stabilization_window_seconds is not None
        else default.stabilization_window_seconds,
        raw.select_policy or default.select_policy,
        policies,
        raw.tolerance if raw.tolerance is not None else DEFAULT_TOLERANCE,
    )


def scaling_spec(so: ScaledObject, targets: Mapping[str, float]) -> ScalingSpec:
    """`targets` maps trigger_key → the metric target its scaler reports (MetricSpec.target)."""
    s = so.spec
    hpa = s.advanced.horizontal_pod_autoscaler_config if s.advanced else None
    behavior = hpa.behavior if hpa else None
    modifiers = s.advanced.scaling_modifiers if s.advanced else None
    triggers = tuple(
        TriggerSpec(trigger_key(so, i), "Value" if t.metric_type == "Value" else "AverageValue",
                    targets.get(trigger_key(so, i), 1.0))
        for i, t in enumerate(s.triggers)
    )
    return ScalingSpec(
        triggers=triggers,
        min_replicas=s.min_replica_count,
        max_replicas=s.max_replica_count,
        idle_replicas=s.idle_replica_count,
        cooldown_seconds=s.cooldown_period,
        initial_cooldown_seconds=s.initial_cooldown_period,
        behavior=Behavior(_rules(behavior.scale_up if behavior else None, DEFAULT_SCALE_UP),
                          _rules(behavior.scale_down if behavior else None, DEFAULT_SCALE_DOWN)),
        fallback=(Fallback(s.fallback.failure_threshold, s.fallback.replicas, s.fallback.behavior)
                  if s.fallback else None),
        modifiers=Modifiers(modifiers.formula, float(modifiers.target or 1), float(modifiers.activation_target or 0),
                            modifiers.metric_type or "AverageValue") if modifiers and modifiers.formula else None,
        paused=so.paused and so.paused_replicas is None,
        paused_replicas=so.paused_replicas,
        paused_scale_in=so.paused_scale_in,
        paused_scale_out=so.paused_scale_out,
        scale_down_given=behavior is not None and behavior.scale_down is not None,
    )
