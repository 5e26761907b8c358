"""Make-before-break drains: the pure decisions the live provisioner, the operator and the
simulator share (`provisioner/disruption.py`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from autoscaler.simulate.policy import SURGE_FEATURES, policy_named
from provisioner.disruption import (
    HANDOVER_TIMEOUT_S,
    Handover,
    dump_handover,
    handover_done,
    handover_extra,
    handover_replicas,
    hands_over,
    live_extras,
    parse_handover,
    workload_of,
)


def pod(name: str, owner: tuple[str, str] | None = ("ReplicaSet", "web-5d8f7"), template_hash: str | None = "5d8f7",
        ns: str = "apps", **meta: Any) -> dict[str, Any]:
    labels = {"app": "web"} | ({"pod-template-hash": template_hash} if template_hash else {})
    refs = [{"kind": owner[0], "name": owner[1], "controller": True}] if owner else []
    return {"metadata": {"name": name, "namespace": ns, "labels": labels, "ownerReferences": refs, **meta},
            "status": {"phase": "Running"}}


def test_only_deployment_pods_are_handed_over_and_counted_per_deployment() -> None:
    pods = [pod("a"), pod("b"), pod("c", owner=("ReplicaSet", "api-77c9d"), template_hash="77c9d"),
            pod("d", ns="other"),
            pod("bare", owner=None, template_hash=None),
            pod("ds", owner=("DaemonSet", "fluentd")),
            pod("sts", owner=("StatefulSet", "db"), template_hash=None),
            pod("job", owner=("Job", "batch-1"), template_hash=None),
            pod("rs-alone", owner=("ReplicaSet", "plain"), template_hash="5d8f7"),  # a ReplicaSet of no Deployment
            pod("pinned", annotations={"karpenter.sh/do-not-disrupt": "true"}),
            pod("static", annotations={"kubernetes.io/config.mirror": "x"}),
            pod("leaving", deletionTimestamp="2026-12-02T10:00:00Z"),
            pod("done") | {"status": {"phase": "Succeeded"}}]
    assert handover_extra(pods) == {("apps", "Deployment", "web"): 2, ("apps", "Deployment", "api"): 1,
                                    ("other", "Deployment", "web"): 1}
    assert workload_of(pod("x", owner=("ReplicaSet", "-5d8f7"))) is None  # no name left once the hash is cut


def test_which_drains_make_before_break() -> None:
    # consolidation, drift and expiry hand over; a spot interruption must drain by drain_at instead
    assert hands_over("Underutilized (delete, saves $0.035/h)") and hands_over("Drifted") and hands_over("Expired")
    assert not hands_over("SpotInterruption") and not hands_over("Empty")


def test_a_handover_is_done_when_ready_pods_elsewhere_cover_the_node_or_time_is_up() -> None:
    h = Handover("node-b", ("apps", "Deployment", "web"), extra=3, started_at=100.0, ready_before=4)
    assert not handover_done(h, 6, 150.0)
    assert handover_done(h, 7, 150.0)
    # the autoscaler scaled the workload down to 5 meanwhile: 5 Ready elsewhere are all it wants
    assert not handover_done(h, 4, 150.0, wanted=5) and handover_done(h, 5, 150.0, wanted=5)
    assert not handover_done(h, 0, 100.0 + HANDOVER_TIMEOUT_S - 1)
    assert handover_done(h, 0, 100.0 + HANDOVER_TIMEOUT_S)
    # covered, but a scale-up's pod still starts elsewhere: taking the extras back would delete that
    # pod (not Ready goes before any pod-deletion-cost) and the drain would evict the node's pods
    assert not handover_done(h, 7, 150.0, wanted=9, starting_elsewhere=1)
    assert handover_done(h, 7, 150.0, wanted=9, starting_elsewhere=0)
    assert handover_done(h, 0, 100.0 + HANDOVER_TIMEOUT_S, starting_elsewhere=2)  # the timeout still ends it


def test_replicas_while_handovers_run_and_the_annotation() -> None:
    assert handover_replicas(6, [2, 1]) == 9 and handover_replicas(0, []) == 0
    assert handover_replicas(6, [-3]) == 6  # a negative extra is never taken off what the autoscaler wants
    entries = {"node-a": (2, 1000.0), "node-b": (1, 500.0)}
    text = dump_handover(entries)
    assert text is not None and json.loads(text) == {"node-a": {"extra": 2, "until": 1000.0},
                                                     "node-b": {"extra": 1, "until": 500.0}}
    assert parse_handover(text) == entries and dump_handover({}) is None
    # an entry past its `until` was left by a provisioner that died mid-handover: it no longer counts
    assert live_extras(entries, 400.0) == 3 and live_extras(entries, 500.0) == 2 and live_extras(entries, 1e4) == 0
    for broken in (None, "", "{", "[1]", '{"n": 2}', '{"n": {"extra": "2", "until": 1}}',
                   '{"n": {"extra": true, "until": 1}}', '{"n": {"extra": -1, "until": 1}}',
                   '{"n": {"extra": 1}}', '{"n": {"extra": 1, "until": "soon"}}'):
        assert parse_handover(broken) == {}, broken


@pytest.mark.parametrize(("name", "on"), [("surge", True), ("surge-no-handover", False),
                                          ("surge-no-spot-no-handover", False), ("keda-karpenter", False),
                                          ("static-peak", False)])
def test_the_simulated_policies_that_hand_over(name: str, on: bool) -> None:
    assert "handover" in SURGE_FEATURES
    assert policy_named(name).handover is on
