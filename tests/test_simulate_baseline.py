"""The keda-karpenter baseline's world rules, one test each, citing what they follow.

The simulator models Kubernetes itself (ReplicaSet, scheduler) and runs the shared decision code
for KEDA's executor, the HPA and Karpenter's disruption; these tests pin the Kubernetes rules the
baseline's churn depends on.
"""

from __future__ import annotations

from autoscaler.simulate.cluster import Cluster, Node


def cluster_with(*nodes: tuple[float, list[float]], now: float, pod_start_s: float = 10.0) -> Cluster:
    """Nodes as (ready_at, ready times of their pods); a pod ready after `now` is still starting."""
    c = Cluster(pod_start_s)
    for ready_at, pods in nodes:
        n = c.launch("m", "on-demand", "z", "p", 1.0, 1.0, 10, now=ready_at - 40, boot_s=40)
        for t in pods:
            c._start(n, 1, t - pod_start_s)
        c.advance(now)
    return c


def counts(c: Cluster) -> list[int]:
    return [c.nodes[i].pods for i in sorted(c.nodes)]


def test_replicaset_scale_down_follows_kubernetes_pod_ranking() -> None:
    # kubernetes pkg/controller/controller_utils.go ActivePodsWithRanks.Less, ranks from
    # pkg/controller/replicaset/replica_set.go getPodsRankedByRelatedPodsOnSameNode:
    # unassigned < assigned; not ready < ready; higher rank (pods on the same node) first; then
    # the more recently ready first, in log2 buckets of age (LogarithmicScaleDown).
    now = 10_000.0
    c = cluster_with(
        (0.0, [9_000.0, 9_000.0]),        # node 0: old node, its 2 pods moved here recently
        (5_000.0, [5_100.0, 5_100.0]),    # node 1: newer node, 2 pods ready long ago
        (1_000.0, [2_000.0] * 3),         # node 2: 3 pods (highest rank), old
        (now + 30, [now + 70]),           # node 3: still booting, 1 pod nominated (no nodeName yet)
        (0.0, [9_990.0, now + 5]),        # node 4: one ready, one starting (not ready)
        now=now)
    assert counts(c) == [2, 2, 3, 1, 2]
    c._delete(1, now)
    assert counts(c) == [2, 2, 3, 0, 2], "the nominated pod is unassigned: deleted first"
    c._delete(1, now)
    assert counts(c) == [2, 2, 3, 0, 1], "then the pod that is not ready yet"
    c._delete(3, now)
    assert counts(c) == [2, 2, 0, 0, 1], "then the 3 pods doubled up on node 2 (rank 3)"
    c._delete(2, now)
    # rank 2 on nodes 0 and 1: node 0's pods became ready 1000 s ago, node 1's 4900 s ago —
    # different log2 buckets, so the more recently ready (on the OLDER node) go first
    assert counts(c) == [0, 2, 0, 0, 1]
    assert c.ready_pods == sum(n.ready for n in c.nodes.values()) == 3


def test_replicaset_ties_in_the_same_age_bucket_do_not_follow_node_age() -> None:
    # Same rank, ready times in the same log2 bucket: Kubernetes compares UIDs (pseudo-random),
    # so neither the node's age nor its id decides; the order is stable run to run.
    now = 10_000.0
    outcomes = []
    for _ in range(2):
        c = cluster_with((0.0, [9_000.0]), (5_000.0, [9_001.0]), now=now)
        c._delete(1, now)
        outcomes.append(counts(c))
    assert sorted(outcomes[0]) == [0, 1] and outcomes[0] == outcomes[1]


def test_node_ready_count_is_its_ready_pods() -> None:
    n = Node(0, "m", "on-demand", "z", "p", 1.0, 1.0, 4, 0.0, 0.0, ready_times=[1.0, 2.0], starting=[5.0])
    assert (n.ready, n.pods, n.free) == (2, 3, 1)
