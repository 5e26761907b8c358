"""Writes tests/karpenter/vectors/*.json: Karpenter's scheduling test cases as scenario vectors.

Source: kubernetes-sigs/karpenter @ 2266468104f36373ed002241afaee2d3bbc26078,
pkg/controllers/provisioning/scheduling/{suite_test,topology_test,instance_selection_test}.go.
Each vector names the case (file:line and its It() title) and carries the facts of the case —
instance types of the fake cloud provider, NodePools, pods, and what the case asserts — as data;
no Karpenter code is copied. Multi-batch cases are reduced to the state Karpenter asserts at the
end; cases that need objects surge does not plan from (existing pods' labels, DRA, reserved
capacity, metrics) are not converted. Run: python tests/karpenter/build_vectors.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "vectors"
ZONE, HOST, CT, ARCH, OS, IT = ("topology.kubernetes.io/zone", "kubernetes.io/hostname", "karpenter.sh/capacity-type",
                               "kubernetes.io/arch", "kubernetes.io/os", "node.kubernetes.io/instance-type")
GPU_A, GPU_B = "fake.com/vendor-a", "fake.com/vendor-b"
LABELS = {"test": "test"}
S2 = {"security": "s2"}


def req(key: str, op: str, *values: str, min_values: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": op}
    if values:
        out["values"] = list(values)
    if min_values is not None:
        out["minValues"] = min_values
    return out


def pool(name: str = "default", reqs: list | None = None, labels: dict | None = None, taints: list | None = None,
         startup: list | None = None, limits: dict | None = None, weight: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"metadata": {"labels": labels or {}}, "spec": {
        "requirements": reqs or [], "taints": taints or [], "startupTaints": startup or []}},
        "limits": limits if limits is not None else {"cpu": "2000"}}
    if weight is not None:
        spec["weight"] = weight
    return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name}, "spec": spec}


def term(labels: dict | None, key: str, namespaces: list | None = None, ns_selector: dict | None = None,
         expressions: list | None = None) -> dict[str, Any]:
    sel: dict[str, Any] | None = None
    if labels is not None or expressions is not None:
        sel = {}
        if labels is not None:
            sel["matchLabels"] = labels
        if expressions is not None:
            sel["matchExpressions"] = expressions
    t: dict[str, Any] = {"topologyKey": key}
    if sel is not None:
        t["labelSelector"] = sel
    if namespaces:
        t["namespaces"] = namespaces
    if ns_selector is not None:
        t["namespaceSelector"] = ns_selector
    return t


def tsc(key: str, skew: int = 1, labels: dict | None = None, when: str = "DoNotSchedule",
        min_domains: int | None = None, expressions: list | None = None) -> dict[str, Any]:
    t: dict[str, Any] = {"topologyKey": key, "maxSkew": skew, "whenUnsatisfiable": when}
    if labels is not None or expressions is not None:
        t["labelSelector"] = {k: v for k, v in (("matchLabels", labels), ("matchExpressions", expressions))
                              if v is not None}
    if min_domains is not None:
        t["minDomains"] = min_domains
    return t


def pod(name: str, labels: dict | None = None, ns: str | None = None, requests: dict | None = None,
        limits: dict | None = None, selector: dict | None = None, required: list | None = None,
        terms: list[list] | None = None, preferred: list | None = None, spread: list | None = None,
        affinity: list | None = None, anti: list | None = None, pref_affinity: list | None = None,
        pref_anti: list | None = None, tolerations: list | None = None, host_ports: list | None = None,
        init: list | None = None, overhead: dict | None = None, volumes: list | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if requests:
        res["requests"] = requests
    if limits:
        res["limits"] = limits
    container: dict[str, Any] = {"name": "app", "image": "pause", "resources": res}
    if host_ports:
        container["ports"] = [{"containerPort": p, "hostPort": p} for p in host_ports]
    optional = {"initContainers": init, "overhead": overhead, "nodeSelector": selector,
                "topologySpreadConstraints": spread, "tolerations": tolerations, "volumes": volumes}
    spec: dict[str, Any] = {"containers": [container], **{k: v for k, v in optional.items() if v}}
    aff: dict[str, Any] = {}
    node_terms = terms if terms is not None else ([required] if required else None)
    if node_terms or preferred:
        na: dict[str, Any] = {}
        if node_terms:
            na["requiredDuringSchedulingIgnoredDuringExecution"] = {
                "nodeSelectorTerms": [{"matchExpressions": t} for t in node_terms]}
        if preferred:
            na["preferredDuringSchedulingIgnoredDuringExecution"] = [
                {"weight": w, "preference": {"matchExpressions": t}} for w, t in preferred]
        aff["nodeAffinity"] = na
    for key, req_terms, pref_terms in (("podAffinity", affinity, pref_affinity),
                                       ("podAntiAffinity", anti, pref_anti)):
        if req_terms is not None or pref_terms:
            block: dict[str, Any] = {}
            if req_terms is not None:
                block["requiredDuringSchedulingIgnoredDuringExecution"] = req_terms
            if pref_terms:
                block["preferredDuringSchedulingIgnoredDuringExecution"] = [
                    {"weight": w, "podAffinityTerm": t} for w, t in pref_terms]
            aff[key] = block
    if aff:
        spec["affinity"] = aff
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    if ns:
        meta["namespace"] = ns
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def pods(prefix: str, n: int, **kw: Any) -> list[dict[str, Any]]:
    return [pod(f"{prefix}-{i}", **kw) for i in range(n)]


VECTORS: dict[str, list[dict[str, Any]]] = {"suite_test.go": [], "topology_test.go": [],
                                           "instance_selection_test.go": []}


def case(file: str, line: int, title: str, pods_: list, expect: dict, pools: list | None = None,
         catalog: Any = "default", divergence: str | None = None, extra: list | None = None) -> None:
    v: dict[str, Any] = {"id": f"{file}:{line}", "title": title, "catalog": catalog, "nodePools": pools,
                         "pods": pods_ + (extra or []), "expect": expect}
    if divergence:
        v["divergence"] = divergence
    VECTORS[file].append(v)


# --- suite_test.go ---------------------------------------------------------------------------------
SUITE = "suite_test.go"
ALLCT = req(CT, "In", "spot", "on-demand", "reserved")


def sp(reqs: list | None = None, labels: dict | None = None, **kw: Any) -> list[dict[str, Any]]:
    return [pool(reqs=reqs if reqs is not None else [ALLCT], labels=labels, **kw)]


def suite() -> None:
    tk = {"test-key": "test-value"}
    # Custom Constraints / NodePool with Labels (and the same cases again under "Scheduling Logic")
    for base in (155, 0):
        case(SUITE, base or 547, "should schedule unconstrained pods that don't have matching node selectors",
             [pod("p")], {"scheduled": "all", "labels": {"p": tk}}, sp(labels=tk) if base else
             sp([ALLCT, req("test-key", "In", "test-value")]))
    case(SUITE, 163, "should not schedule pods that have conflicting node selectors",
         [pod("p", selector={"test-key": "different-value"})], {"unscheduled": ["p"]}, sp(labels=tk))
    case(SUITE, 172, "should not schedule pods that have node selectors with undefined key",
         [pod("p", selector=tk)], {"unscheduled": ["p"]}, sp())
    case(SUITE, 180, "should schedule pods that have matching requirements",
         [pod("p", required=[req("test-key", "In", "test-value", "another-value")])],
         {"scheduled": "all", "labels": {"p": tk}}, sp(labels=tk))
    case(SUITE, 192, "should not schedule pods that have conflicting requirements",
         [pod("p", required=[req("test-key", "In", "another-value")])], {"unscheduled": ["p"]}, sp(labels=tk))
    # Well Known Labels (twice in the file: 205.. and 679..)
    for off, title_suffix in ((0, ""), (474, " (second context)")):
        z2 = [req(ZONE, "In", "test-zone-2")]
        case(SUITE, 205 + off, "should use NodePool constraints" + title_suffix, [pod("p")],
             {"scheduled": "all", "labels": {"p": {ZONE: "test-zone-2"}}}, sp(z2))
        case(SUITE, 214 + off, "should use node selectors" + title_suffix, [pod("p", selector={ZONE: "test-zone-2"})],
             {"labels": {"p": {ZONE: "test-zone-2"}}}, sp([req(ZONE, "In", "test-zone-1", "test-zone-2")]))
        case(SUITE, 225 + off, "should not schedule nodes with a hostname selector" + title_suffix,
             [pod("p", selector={HOST: "red-node"})], {"unscheduled": ["p"]}, sp())
        case(SUITE, 233 + off, "should not schedule the pod if nodeselector unknown" + title_suffix,
             [pod("p", selector={ZONE: "unknown"})], {"unscheduled": ["p"]}, sp([req(ZONE, "In", "test-zone-1")]))
        case(SUITE, 243 + off, "should not schedule if node selector outside of NodePool constraints" + title_suffix,
             [pod("p", selector={ZONE: "test-zone-2"})], {"unscheduled": ["p"]}, sp([req(ZONE, "In", "test-zone-1")]))
        case(SUITE, 253 + off, "should schedule compatible requirements with Operator=In" + title_suffix,
             [pod("p", required=[req(ZONE, "In", "test-zone-3")])], {"labels": {"p": {ZONE: "test-zone-3"}}}, sp())
        case(SUITE, 264 + off, "should schedule compatible requirements with Operator=Gt" + title_suffix, [pod("p")],
             {"labels": {"p": {"integer": "16"}}}, sp([req("integer", "Gt", "8")]))
        case(SUITE, 273 + off, "should schedule compatible requirements with Operator=Lt" + title_suffix, [pod("p")],
             {"labels": {"p": {"integer": "2"}}}, sp([req("integer", "Lt", "8")]))
        case(SUITE, 300 + off, "should not schedule incompatible preferences and requirements with Operator=In"
             + title_suffix, [pod("p", required=[req(ZONE, "In", "unknown")])], {"unscheduled": ["p"]}, sp())
        case(SUITE, 310 + off, "should schedule compatible requirements with Operator=NotIn" + title_suffix,
             [pod("p", required=[req(ZONE, "NotIn", "test-zone-1", "test-zone-2", "unknown")])],
             {"labels": {"p": {ZONE: "test-zone-3"}}}, sp())
        case(SUITE, 321 + off, "should not schedule incompatible preferences and requirements with Operator=NotIn"
             + title_suffix, [pod("p", required=[req(ZONE, "NotIn", "test-zone-1", "test-zone-2", "test-zone-3",
                                                       "unknown")])], {"unscheduled": ["p"]}, sp())
        all_z = req(ZONE, "In", "test-zone-1", "test-zone-2", "test-zone-3", "unknown")
        case(SUITE, 332 + off, "should schedule compatible preferences and requirements with Operator=In"
             + title_suffix,
             [pod("p", required=[all_z], preferred=[(1, [req(ZONE, "In", "test-zone-2", "unknown")])])],
             {"labels": {"p": {ZONE: "test-zone-2"}}}, sp())
        case(SUITE, 346 + off, "should schedule incompatible preferences and requirements with Operator=In"
             + title_suffix, [pod("p", required=[all_z], preferred=[(1, [req(ZONE, "In", "unknown")])])],
             {"scheduled": "all"}, sp())
        case(SUITE, 359 + off, "should schedule compatible preferences and requirements with Operator=NotIn"
             + title_suffix, [pod("p", required=[all_z], preferred=[(1, [req(ZONE, "NotIn", "test-zone-1",
                                                                                "test-zone-3")])])],
             {"labels": {"p": {ZONE: "test-zone-2"}}}, sp())
        case(SUITE, 373 + off, "should schedule incompatible preferences and requirements with Operator=NotIn"
             + title_suffix, [pod("p", required=[all_z], preferred=[(1, [req(ZONE, "NotIn", "test-zone-1",
                                                                                "test-zone-2", "test-zone-3")])])],
             {"scheduled": "all"}, sp())
        case(SUITE, 386 + off, "should schedule compatible node selectors, preferences and requirements" + title_suffix,
             [pod("p", selector={ZONE: "test-zone-3"},
                  required=[req(ZONE, "In", "test-zone-1", "test-zone-2", "test-zone-3")],
                  preferred=[(1, [req(ZONE, "In", "test-zone-1", "test-zone-2", "test-zone-3")])])],
             {"labels": {"p": {ZONE: "test-zone-3"}}}, sp())
        case(SUITE, 401 + off, "should combine multidimensional node selectors, preferences and requirements"
             + title_suffix,
             [pod("p", selector={ZONE: "test-zone-3", IT: "arm-instance-type"},
                  required=[req(ZONE, "In", "test-zone-1", "test-zone-3"),
                            req(IT, "In", "default-instance-type", "arm-instance-type")],
                  preferred=[(1, [req(ZONE, "NotIn", "unknown"), req(IT, "NotIn", "unknown")])])],
             {"labels": {"p": {ZONE: "test-zone-3", IT: "arm-instance-type"}}}, sp())
    case(SUITE, 282, "should schedule compatible requirements with Operator=Gte", [pod("p")],
         {"labels": {"p": {"integer": "16"}}}, sp([req("integer", "Gte", "16")]))
    case(SUITE, 291, "should schedule compatible requirements with Operator=Lte", [pod("p")],
         {"labels": {"p": {"integer": "2"}}}, sp([req("integer", "Lte", "2")]))
    # Scheduling Logic
    tkp = [req("test-key", "In", "test-value")]
    case(SUITE, 509, "should not schedule pods that have node selectors with In operator and undefined key",
         [pod("p", required=[req("test-key", "In", "test-value")])], {"unscheduled": ["p"]}, sp())
    case(SUITE, 518, "should schedule pods that have node selectors with NotIn operator and undefined key",
         [pod("p", required=[req("test-key", "NotIn", "test-value")])],
         {"scheduled": "all", "labels": {"p": {"test-key": {"not": "test-value"}}}}, sp())
    case(SUITE, 528, "should not schedule pods that have node selectors with Exists operator and undefined key",
         [pod("p", required=[req("test-key", "Exists")])], {"unscheduled": ["p"]}, sp())
    case(SUITE, 537, "should schedule pods that with DoesNotExists operator and undefined key",
         [pod("p", required=[req("test-key", "DoesNotExist")])], {"labels": {"p": {"test-key": None}}}, sp())
    case(SUITE, 556, "should schedule pods that have node selectors with matching value and In operator",
         [pod("p", required=tkp)], {"labels": {"p": tk}}, sp([ALLCT, *tkp]))
    case(SUITE, 568, "should not schedule pods that have node selectors with matching value and NotIn operator",
         [pod("p", required=[req("test-key", "NotIn", "test-value")])], {"unscheduled": ["p"]}, sp([ALLCT, *tkp]))
    case(SUITE, 579, "should schedule the pod with Exists operator and defined key",
         [pod("p", required=[req("test-key", "Exists")])], {"scheduled": "all"}, sp([ALLCT, *tkp]))
    case(SUITE, 591, "should not schedule the pod with DoesNotExists operator and defined key",
         [pod("p", required=[req("test-key", "DoesNotExist")])], {"unscheduled": ["p"]}, sp([ALLCT, *tkp]))
    case(SUITE, 603, "should not schedule pods that have node selectors with different value and In operator",
         [pod("p", required=[req("test-key", "In", "another-value")])], {"unscheduled": ["p"]}, sp([ALLCT, *tkp]))
    case(SUITE, 614, "should schedule pods that have node selectors with different value and NotIn operator",
         [pod("p", required=[req("test-key", "NotIn", "another-value")])], {"labels": {"p": tk}}, sp([ALLCT, *tkp]))
    two = [ALLCT, req("test-key", "In", "test-value", "another-value")]
    case(SUITE, 626, "should schedule compatible pods to the same node",
         [pod("a", required=[req("test-key", "In", "test-value")]),
          pod("b", required=[req("test-key", "NotIn", "another-value")])],
         {"labels": {"a": tk, "b": tk}, "sameNode": [["a", "b"]]}, sp(two))
    case(SUITE, 646, "should schedule incompatible pods to the different node",
         [pod("a", required=[req("test-key", "In", "test-value")]),
          pod("b", required=[req("test-key", "In", "another-value")])],
         {"labels": {"a": tk, "b": {"test-key": "another-value"}}, "differentNodes": [["a", "b"]]}, sp(two))
    case(SUITE, 666, "Exists operator should not overwrite the existing value",
         [pod("p", required=[req(ZONE, "In", "non-existent-zone"), req(ZONE, "Exists")])], {"unscheduled": ["p"]},
         sp())
    # Preferential Fallback
    case(SUITE, 1128, "should not relax the final term",
         [pod("p", terms=[[req(ZONE, "In", "invalid")]])], {"unscheduled": ["p"]},
         sp([req(ZONE, "In", "test-zone-1"), req(IT, "In", "default-instance-type")]))
    case(SUITE, 1144, "should relax multiple terms",
         [pod("p", terms=[[req(ZONE, "In", "invalid")], [req(ZONE, "In", "invalid")], [req(ZONE, "In", "test-zone-1")],
                          [req(ZONE, "In", "test-zone-2")]])], {"labels": {"p": {ZONE: "test-zone-1"}}}, sp())
    case(SUITE, 1168, "should relax all terms",
         [pod("p", preferred=[(1, [req(ZONE, "In", "invalid")]), (1, [req(IT, "In", "invalid")])])],
         {"scheduled": "all"}, sp())
    case(SUITE, 1187, "should relax to use lighter weights",
         [pod("p", preferred=[(100, [req(IT, "In", "test-zone-3")]), (50, [req(ZONE, "In", "test-zone-2")]),
                              (1, [req(ZONE, "In", "test-zone-1")])])],
         {"labels": {"p": {ZONE: "test-zone-2"}}}, sp([req(ZONE, "In", "test-zone-1", "test-zone-2")]))
    case(SUITE, 1214, "should schedule even if preference is conflicting with requirement",
         [pod("p", required=[req(ZONE, "In", "test-zone-3")], preferred=[(1, [req(ZONE, "NotIn", "test-zone-3")])])],
         {"labels": {"p": {ZONE: "test-zone-3"}}}, sp())
    case(SUITE, 1235, "should schedule even if preference requirements are conflicting",
         [pod("p", preferred=[(1, [req(ZONE, "In", "invalid"), req(ZONE, "NotIn", "invalid")])])],
         {"scheduled": "all"}, sp())
    # Instance Type Compatibility
    case(SUITE, 1248, "should not schedule if requesting more resources than any instance type has",
         [pod("p", requests={"cpu": "512"})], {"unscheduled": ["p"]}, sp())
    both = [ALLCT, req(ARCH, "In", "arm64", "amd64")]
    case(SUITE, 1259, "should launch pods with different archs on different instances",
         [pod("a", selector={ARCH: "amd64"}), pod("b", selector={ARCH: "arm64"})],
         {"scheduled": "all", "differentNodes": [["a", "b"]]}, sp(both))
    amd = [ALLCT, req(ARCH, "In", "amd64")]
    case(SUITE, 1284, "should exclude instance types that are not supported by the pod constraints "
         "(node affinity/instance type)", [pod("p", required=[req(IT, "In", "arm-instance-type")])],
         {"unscheduled": ["p"]}, sp(amd))
    case(SUITE, 1305, "should exclude instance types that are not supported by the pod constraints "
         "(node affinity/operating system)", [pod("p", required=[req(OS, "In", "ios")])], {"unscheduled": ["p"]},
         sp(amd))
    case(SUITE, 1327, "should exclude instance types that are not supported by the provider constraints (arch)",
         [pod("p", limits={"cpu": "14"})], {"unscheduled": ["p"]}, sp(amd))
    case(SUITE, 1342, "should launch pods with different operating systems on different instances",
         [pod("a", selector={OS: "linux"}), pod("b", selector={OS: "windows"})],
         {"scheduled": "all", "differentNodes": [["a", "b"]]}, sp(both))
    case(SUITE, 1367, "should launch pods with different instance type node selectors on different instances",
         [pod("a", selector={IT: "small-instance-type"}), pod("b", selector={IT: "default-instance-type"})],
         {"scheduled": "all", "differentNodes": [["a", "b"]]}, sp(both))
    case(SUITE, 1392, "should launch pods with different zone selectors on different instances",
         [pod("a", selector={ZONE: "test-zone-1"}), pod("b", selector={ZONE: "test-zone-2"})],
         {"scheduled": "all", "differentNodes": [["a", "b"]]}, sp(both))
    gpus = {"sized": 5, "extra": {"fake-it-0": {"karpenter.sh/super-great-gpu": "25"},
                                  "fake-it-1": {"karpenter.sh/even-better-gpu": "25"}}}
    case(SUITE, 1417, "should launch pods with resources that aren't on any single instance type on different "
         "instances", [pod("a", limits={"karpenter.sh/super-great-gpu": "1"}),
                       pod("b", limits={"karpenter.sh/even-better-gpu": "1"})],
         {"scheduled": "all", "differentNodes": [["a", "b"]]}, sp(), catalog=gpus)
    case(SUITE, 1446, "should fail to schedule a pod with resources requests that aren't on a single instance type",
         [pod("p", limits={"karpenter.sh/super-great-gpu": "1", "karpenter.sh/even-better-gpu": "1"})],
         {"unscheduled": ["p"]}, sp(), catalog=gpus)
    case(SUITE, 1465, "should filter instance types that match labels",
         [pod("a", selector={"size": "large"}), pod("b", selector={"size": "small"})],
         {"types": {"a": "fake-it-4", "b": "fake-it-0"}}, sp(), catalog={"sized": 5})
    case(SUITE, 1478, "should not schedule with incompatible labels",
         [pod("a", selector={"size": "large", IT: "fake-it-0"}), pod("b", selector={"size": "small", IT: "fake-it-4"})],
         {"unscheduled": ["a", "b"]}, sp(), catalog={"sized": 5})
    case(SUITE, 1495, "should schedule optional labels", [pod("p", required=[req("special", "Exists")])],
         {"labels": {"p": {"special": "optional"}}, "types": {"p": "fake-it-4"}}, sp(), catalog={"sized": 5})
    case(SUITE, 1507, "should schedule without optional labels if disallowed",
         [pod("p", required=[req("special", "DoesNotExist")])], {"labels": {"p": {"special": None}}}, sp(),
         catalog={"sized": 5})
    # Binpacking
    case(SUITE, 1522, "should schedule a small pod on the smallest instance", [pod("p", requests={"memory": "100M"})],
         {"types": {"p": "small-instance-type"}}, sp())
    case(SUITE, 1534, "should schedule a small pod on the smallest possible instance type",
         [pod("p", requests={"memory": "2000M"})], {"types": {"p": "small-instance-type"}}, sp())
    case(SUITE, 1546, "should take pod runtime class into consideration (pod overhead of 2 CPUs)",
         [pod("p", requests={"cpu": "1"}, overhead={"cpu": "2"})], {"types": {"p": "default-instance-type"}}, sp())
    case(SUITE, 1574, "should schedule multiple small pods on the smallest possible instance type",
         pods("p", 5, requests={"memory": "10M"}), {"nodes": 1, "allTypes": ["small-instance-type"]}, sp())
    case(SUITE, 1593, "should create new nodes when a node is at capacity",
         pods("p", 40, selector={ARCH: "amd64"}, requests={"memory": "1.8G"}),
         {"scheduled": "all", "nodes": 20, "allTypes": ["default-instance-type"]}, sp())
    case(SUITE, 1613, "should pack small and large pods together",
         pods("large", 40, selector={ARCH: "amd64"}, requests={"memory": "1.8G"})
         + pods("small", 20, selector={ARCH: "amd64"}, requests={"memory": "400M"}),
         {"scheduled": "all", "nodes": 20, "allTypes": ["default-instance-type"]}, sp())
    case(SUITE, 1645, "should pack nodes tightly",
         [pod("a", requests={"cpu": "4.5"}), pod("b", requests={"cpu": "1"})],
         {"nodes": 2, "sameLabel": [["a", "b", IT, False]]}, sp(), catalog={"sized": 5})
    case(SUITE, 1671, "should handle zero-quantity resource requests",
         [pod("p", requests={"foo.com/weird-resources": "0"}, limits={"foo.com/weird-resources": "0"})],
         {"scheduled": "all"}, sp())
    case(SUITE, 1683, "should not schedule pods that exceed every instance type's capacity",
         [pod("p", requests={"memory": "2Ti"})], {"unscheduled": ["p"]}, sp())
    case(SUITE, 1694, "should create new nodes when a node is at capacity due to pod limits per node",
         pods("p", 25, selector={ARCH: "amd64"}, requests={"memory": "1m", "cpu": "1m"}),
         {"scheduled": "all", "nodes": 5, "allTypes": ["small-instance-type"]}, sp())
    case(SUITE, 1716, "should take into account initContainer resource requests when binpacking",
         [pod("p", requests={"memory": "1Gi", "cpu": "1"},
              init=[{"name": "init", "resources": {"requests": {"memory": "1Gi", "cpu": "2"}}}])],
         {"types": {"p": "default-instance-type"}}, sp())
    case(SUITE, 1741, "should not schedule pods when initContainer resource requests are greater than available "
         "instance types", [pod("p", requests={"memory": "1Gi", "cpu": "1"},
                                init=[{"name": "init", "resources": {"requests": {"memory": "1Ti", "cpu": "2"}}}])],
         {"unscheduled": ["p"]}, sp())
    priced = [{"name": n, "resources": {"cpu": c, "memory": m}, "offerings": [["on-demand", "test-zone-1a", pr]]}
              for n, c, m, pr in (("medium", "2", "2Gi", 3.0), ("small", "1", "1Gi", 2.0), ("large", "4", "4Gi", 1.0))]
    case(SUITE, 1763, "should select for valid instance types, regardless of price",
         [pod("p", limits={"cpu": "1m", "memory": "1Mi"})], {"types": {"p": "large"}}, sp(), catalog=priced)
    case(SUITE, 2593, "should schedule pods with the same host port to different nodes",
         [pod("a", host_ports=[8080]), pod("b", host_ports=[8080])], {"differentNodes": [["a", "b"]]}, sp())
    # extended resources of the fake provider, limits-as-requests
    case(SUITE, 2818, "should handle resource zeroing of extended resources by kubelet (first provisioning)",
         [pod("p", limits={GPU_A: "1"})], {"types": {"p": "gpu-vendor-instance-type"}}, sp())
    # Taints (topology_test.go's Taints Describe uses the topology default pool)


# --- topology_test.go --------------------------------------------------------------------------------
TOPO = "topology_test.go"
EXISTS_CT = req(CT, "Exists")


def tp(reqs: list | None = None, labels: dict | None = None, **kw: Any) -> list[dict[str, Any]]:
    return [pool(reqs=reqs if reqs is not None else [EXISTS_CT], labels=labels, **kw)]


def topology() -> None:
    zspread = tsc(ZONE, 1, LABELS)
    case(TOPO, 61, "should ignore unknown topology keys",
         [pod("a", labels=LABELS, spread=[tsc("unknown", 1, LABELS)]), pod("b")],
         {"unscheduled": ["a"], "scheduled": ["b"]}, tp())
    case(TOPO, 95, "should not spread when a nil label selector is defined",
         pods("p", 2, labels=LABELS, spread=[tsc(ZONE, 1)]), {"skew": [{"key": ZONE, "counts": [2]}]}, tp())
    case(TOPO, 111, "should balance pods across zones (match labels)", pods("p", 4, labels=LABELS, spread=[zspread]),
         {"skew": [{"key": ZONE, "selector": {"matchLabels": LABELS}, "counts": [1, 1, 2]}]}, tp())
    case(TOPO, 124, "should balance pods across zones (match expressions)",
         pods("p", 4, labels=LABELS, spread=[tsc(ZONE, 1, expressions=[req("test", "In", "test")])]),
         {"skew": [{"key": ZONE, "selector": {"matchLabels": LABELS}, "counts": [1, 1, 2]}]}, tp())
    case(TOPO, 145, "should respect NodePool zonal constraints", pods("p", 4, labels=LABELS, spread=[zspread]),
         {"skew": [{"key": ZONE, "counts": [1, 1, 2]}]},
         tp([req(ZONE, "In", "test-zone-1", "test-zone-2", "test-zone-3")]))
    case(TOPO, 160, "should respect NodePool zonal constraints (subset) with requirements",
         pods("p", 4, labels=LABELS, spread=[zspread]), {"skew": [{"key": ZONE, "counts": [2, 2]}]},
         tp([req(ZONE, "In", "test-zone-1", "test-zone-2")]))
    case(TOPO, 176, "should respect NodePool zonal constraints (subset) with labels",
         pods("p", 4, labels=LABELS, spread=[zspread]), {"skew": [{"key": ZONE, "counts": [4]}]},
         tp(labels={ZONE: "test-zone-1"}))
    case(TOPO, 191, "should respect NodePool zonal constraints (subset) with requirements and labels",
         pods("p", 4, labels=LABELS, spread=[zspread]), {"skew": [{"key": ZONE, "counts": [4]}]},
         tp([req(ZONE, "In", "test-zone-1", "test-zone-2")], labels={ZONE: "test-zone-1"}))
    case(TOPO, 207, "should respect NodePool zonal constraints (subset) with labels across NodePools",
         pods("p", 4, labels=LABELS, spread=[zspread]), {"skew": [{"key": ZONE, "counts": [2, 2]}]},
         [pool("default", [req(ZONE, "In", "test-zone-1", "test-zone-2")], labels={ZONE: "test-zone-1"}),
          pool("second", [EXISTS_CT], labels={ZONE: "test-zone-2"})])
    case(TOPO, 448, "should match all pods when labelSelector is not specified", [pod("p")],
         {"skew": [{"key": ZONE, "counts": [1]}]}, tp())
    case(TOPO, 460, "should handle interdependent selectors", pods("p", 5, spread=[tsc(HOST, 1, LABELS)]),
         {"scheduled": "all", "nodes": 1}, tp())
    case(TOPO, 485, "should respect minDomains constraints",
         pods("p", 3, labels=LABELS, spread=[tsc(ZONE, 1, LABELS, min_domains=3)]),
         {"skew": [{"key": ZONE, "counts": [1, 1]}], "scheduledCount": 2},
         tp([req(ZONE, "In", "test-zone-1", "test-zone-2")]))
    case(TOPO, 505, "satisfied minDomains constraints (equal) should allow expected pod scheduling",
         pods("p", 11, labels=LABELS, spread=[tsc(ZONE, 1, LABELS, min_domains=3)]),
         {"skew": [{"key": ZONE, "counts": [4, 4, 3]}]},
         tp([req(ZONE, "In", "test-zone-1", "test-zone-2", "test-zone-3")]))
    case(TOPO, 525, "satisfied minDomains constraints (greater than minimum) should allow expected pod scheduling",
         pods("p", 11, labels=LABELS, spread=[tsc(ZONE, 1, LABELS, min_domains=2)]),
         {"skew": [{"key": ZONE, "counts": [4, 4, 3]}]},
         tp([req(ZONE, "In", "test-zone-1", "test-zone-2", "test-zone-3")]))
    case(TOPO, 548, "should balance pods across nodes", pods("p", 4, labels=LABELS, spread=[tsc(HOST, 1, LABELS)]),
         {"skew": [{"key": HOST, "counts": [1, 1, 1, 1]}]}, tp())
    case(TOPO, 561, "should balance pods on the same hostname up to maxskew",
         pods("p", 4, labels=LABELS, spread=[tsc(HOST, 4, LABELS)]), {"skew": [{"key": HOST, "counts": [4]}]}, tp())
    app = [pod(f"{a}-{i}", labels={"app": a}, spread=[tsc(HOST, 1, {"app": a})]) for a in ("app1", "app2")
           for i in range(2)]
    case(TOPO, 574, "balance multiple deployments with hostname topology spread", app,
         {"scheduled": "all", "nodes": 2}, tp())
    app = [pod(f"{a}-{i}", labels={"app": a}, required=[req(ARCH, "In", arch)], spread=[tsc(HOST, 1, {"app": a})])
           for a, arch in (("app1", "amd64"), ("app2", "arm64")) for i in range(2)]
    case(TOPO, 610, "balance multiple deployments with hostname topology spread & varying arch", app,
         {"scheduled": "all", "nodes": 4}, tp())
    ctspread = tsc(CT, 1, LABELS)
    case(TOPO, 656, "should balance pods across capacity types", pods("p", 4, labels=LABELS, spread=[ctspread]),
         {"skew": [{"key": CT, "counts": [2, 2]}]}, tp())
    case(TOPO, 669, "should respect NodePool capacity type constraints", pods("p", 4, labels=LABELS, spread=[ctspread]),
         {"skew": [{"key": CT, "counts": [2, 2]}]}, tp([req(CT, "In", "spot", "on-demand")]))
    case(TOPO, 783, "should match all pods when labelSelector is not specified (capacity type)", [pod("p")],
         {"skew": [{"key": CT, "counts": [1]}]}, tp())
    case(TOPO, 795, "should handle interdependent selectors (capacity type context)",
         pods("p", 5, spread=[tsc(HOST, 1, LABELS)]), {"scheduled": "all", "nodes": 1}, tp())
    both = [tsc(ZONE, 1, LABELS), tsc(HOST, 3, LABELS)]
    case(TOPO, 944, "should spread pods while respecting both constraints (hostname and zonal), first batch",
         pods("p", 2, labels=LABELS, spread=both),
         {"skew": [{"key": ZONE, "counts": [1, 1]}, {"key": HOST, "max": 3}]}, tp())
    case(TOPO, 944, "should spread pods while respecting both constraints (hostname and zonal), 21 pods",
         pods("p", 21, labels=LABELS, spread=both),
         {"skew": [{"key": ZONE, "counts": [7, 7, 7]}, {"key": HOST, "max": 3}]}, tp())
    zc = [tsc(ZONE, 1, LABELS), tsc(CT, 1, LABELS)]
    case(TOPO, 1665, "should spread pods while respecting both constraints (zonal and capacity type)",
         pods("p", 4, labels=LABELS, spread=zc), {"scheduled": "all", "skew": [{"key": ZONE, "max": 2}]},
         tp([req(CT, "In", "spot", "on-demand")]))
    case(TOPO, 1743, "should limit spread options by nodeSelector",
         pods("p", 5, labels=LABELS, spread=[zspread], selector={ZONE: "test-zone-1"})
         + pods("q", 10, labels=LABELS, spread=[zspread], selector={ZONE: "test-zone-2"}),
         {"skew": [{"key": ZONE, "counts": [5, 10]}]}, tp())
    case(TOPO, 1769, "should limit spread options by node requirements",
         pods("p", 10, labels=LABELS, spread=[zspread], required=[req(ZONE, "In", "test-zone-1", "test-zone-2")]),
         {"skew": [{"key": ZONE, "counts": [5, 5]}]}, tp())
    case(TOPO, 1835, "should not limit spread options by preferred node affinity",
         pods("p", 6, labels=LABELS, spread=[zspread], preferred=[(10, [req(ZONE, "In", "test-zone-1",
                                                                              "test-zone-2")])]),
         {"skew": [{"key": ZONE, "counts": [2, 2, 2]}]}, tp())
    case(TOPO, 1860, "should limit spread options by nodeSelector (capacity type)",
         pods("p", 5, labels=LABELS, spread=[ctspread], selector={CT: "spot"})
         + pods("q", 5, labels=LABELS, spread=[ctspread], selector={CT: "on-demand"}),
         {"skew": [{"key": CT, "counts": [5, 5]}]}, tp())
    case(TOPO, 1884, "should limit spread options by node affinity (capacity type)",
         pods("p", 3, labels=LABELS, spread=[ctspread], required=[req(CT, "In", "on-demand")]),
         {"skew": [{"key": CT, "counts": [3]}]}, tp())
    # Pod affinity / anti-affinity
    case(TOPO, 1929, "should schedule a pod with empty pod affinity and anti-affinity",
         [pod("p", affinity=[], anti=[])], {"scheduled": "all"}, tp())
    spread10 = pods("s", 10, labels=LABELS, spread=[tsc(HOST, 1, LABELS)])
    case(TOPO, 1939, "should respect pod affinity (hostname)",
         [pod("aff1", labels=S2), pod("aff2", affinity=[term(S2, HOST)])],
         {"sameNode": [["aff1", "aff2"]]}, tp(), extra=spread10)
    case(TOPO, 1973, "should respect pod affinity (arch)",
         [pod("aff1", labels=S2, spread=[tsc(HOST, 1, S2)], requests={"cpu": "2"}, selector={ARCH: "arm64"}),
          pod("aff2", labels=S2, spread=[tsc(HOST, 1, S2)], requests={"cpu": "1"}, affinity=[term(S2, ARCH)])],
         {"sameLabel": [["aff1", "aff2", ARCH, True]], "differentNodes": [["aff1", "aff2"]]}, tp())
    case(TOPO, 2016, "should respect self pod affinity (hostname)", pods("p", 3, labels=S2, affinity=[term(S2, HOST)]),
         {"scheduled": "all", "nodes": 1}, tp())
    case(TOPO, 2040, "should respect self pod affinity for first empty topology domain only (hostname)",
         pods("p", 10, labels=S2, affinity=[term(S2, HOST)]), {"nodes": 1, "scheduledCount": 5}, tp())
    case(TOPO, 2126, "should respect self pod affinity (zone)", pods("p", 3, labels=S2, affinity=[term(S2, ZONE)]),
         {"scheduled": "all", "nodes": 1}, tp())
    case(TOPO, 2150, "should respect self pod affinity (zone w/ constraint)",
         pods("p", 3, labels=S2, affinity=[term(S2, ZONE)], required=[req(ZONE, "In", "test-zone-3")]),
         {"scheduled": "all", "nodes": 1, "labels": {f"p-{i}": {ZONE: "test-zone-3"} for i in range(3)}}, tp())
    case(TOPO, 2181, "should allow two nodes to be created when two pods with matching affinities have incompatible "
         "selectors", [pod("a", labels={"security": "s1"}, affinity=[term({"security": "s1"}, ZONE)],
                           required=[req(ZONE, "In", "test-zone-2")]),
                       pod("b", labels={"security": "s1"}, affinity=[term({"security": "s1"}, ZONE)],
                           required=[req(ZONE, "In", "test-zone-3")])],
         {"labels": {"a": {ZONE: "test-zone-2"}, "b": {ZONE: "test-zone-3"}}, "nodes": 2}, tp())
    case(TOPO, 2234, "should allow violation of preferred pod affinity",
         [pod("aff", pref_affinity=[(50, term(S2, HOST))])], {"scheduled": ["aff"]}, tp(), extra=spread10)
    case(TOPO, 2267, "should allow violation of preferred pod anti-affinity",
         pods("aff", 10, pref_anti=[(50, term(LABELS, ZONE))]), {"scheduled": [f"aff-{i}" for i in range(10)]}, tp(),
         extra=pods("s", 3, labels=LABELS, spread=[zspread]))
    case(TOPO, 2300, "should separate nodes using simple pod anti-affinity on hostname",
         [pod("aff2", anti=[term(S2, HOST)]), pod("aff1", labels=S2)], {"differentNodes": [["aff1", "aff2"]]}, tp())
    zone_pods = [pod(f"zone{i}", labels=S2, requests={"cpu": "2"}, selector={ZONE: f"test-zone-{i}"})
                 for i in (1, 2, 3)]
    case(TOPO, 2322, "should not violate pod anti-affinity on zone", [*zone_pods, pod("aff", anti=[term(S2, ZONE)])],
         {"scheduled": ["zone1", "zone2", "zone3"], "unscheduled": ["aff"]}, tp())
    case(TOPO, 2361, "should not violate pod anti-affinity on zone (other schedules first), final state",
         [pod("p", labels=S2, requests={"cpu": "2"}), pod("aff", anti=[term(S2, ZONE)])],
         {"scheduled": ["p", "aff"], "sameLabel": [["p", "aff", ZONE, False]]}, tp(),
         divergence=None)
    case(TOPO, 2383, "should not violate pod anti-affinity (arch)",
         [pod("aff1", labels=S2, spread=[tsc(HOST, 1, S2)], requests={"cpu": "2"}, selector={ARCH: "arm64"}),
          pod("aff2", labels=S2, spread=[tsc(HOST, 1, S2)], requests={"cpu": "1"}, anti=[term(S2, ARCH)])],
         {"scheduled": "all", "sameLabel": [["aff1", "aff2", ARCH, False]]}, tp())
    anti_zone = [pod(f"zone{i}", requests={"cpu": "2"}, pref_anti=[(10, term(S2, ZONE))],
                     selector={ZONE: f"test-zone-{i}"}) for i in (1, 2, 3)]
    case(TOPO, 2426, "should violate preferred pod anti-affinity on zone (inverse)",
         [*anti_zone, pod("aff", labels=S2)], {"scheduled": "all"}, tp())
    anti_zone = [pod(f"zone{i}", requests={"cpu": "2"}, anti=[term(S2, ZONE)], selector={ZONE: f"test-zone-{i}"})
                 for i in (1, 2, 3)]
    case(TOPO, 2466, "should not violate pod anti-affinity on zone (inverse)", [*anti_zone, pod("aff", labels=S2)],
         {"scheduled": ["zone1", "zone2", "zone3"], "unscheduled": ["aff"]}, tp())
    case(TOPO, 2502, "should not violate pod anti-affinity on zone (Schrödinger), final state after two batches",
         [pod("anywhere", anti=[term(S2, ZONE)], requests={"cpu": "2"}), pod("aff", labels=S2)],
         {"scheduled": "all", "sameLabel": [["anywhere", "aff", ZONE, False]]}, tp())
    case(TOPO, 2633, "should allow violation of a pod affinity preference with a conflicting required constraint",
         [pod("aff1", labels=S2), *pods("p", 3, labels=LABELS, spread=[tsc(HOST, 1, LABELS)],
                                         pref_affinity=[(50, term(S2, HOST))])],
         {"scheduled": "all", "skew": [{"key": HOST, "selector": {"matchLabels": LABELS}, "counts": [1, 1, 1]}]}, tp())
    case(TOPO, 2668, "should support pod anti-affinity with a zone topology, final state after three batches",
         pods("p", 3, labels=S2, anti=[term(S2, ZONE)]), {"skew": [{"key": ZONE, "counts": [1, 1, 1]}]}, tp())
    case(TOPO, 2668, "should support pod anti-affinity with a zone topology: a fourth pod never schedules",
         pods("p", 4, labels=S2, anti=[term(S2, ZONE)]),
         {"skew": [{"key": ZONE, "counts": [1, 1, 1]}], "scheduledCount": 3}, tp())
    case(TOPO, 2713, "should not schedule pods with affinity to a non-existent pod",
         pods("p", 10, affinity=[term(S2, ZONE)]), {"unscheduled": [f"p-{i}" for i in range(10)]}, tp())
    case(TOPO, 2730, "should support pod affinity with zone topology (unconstrained target), final state",
         [pod("target", labels=S2), *pods("p", 10, affinity=[term(S2, ZONE)])],
         {"scheduled": "all", "skew": [{"key": ZONE, "counts": [11]}]}, tp())
    case(TOPO, 2763, "should support pod affinity with zone topology (constrained target)",
         [pod("aff1", labels=S2, required=[req(ZONE, "In", "test-zone-1")]), *pods("p", 10, affinity=[term(S2, ZONE)])],
         {"scheduled": "all", "skew": [{"key": ZONE, "counts": [11]}], "labels": {"p-0": {ZONE: "test-zone-1"}}}, tp())
    db, web = {"type": "db", "spread": "spread"}, {"type": "web", "spread": "spread"}
    cache, ui = {"type": "cache", "spread": "spread"}, {"type": "ui", "spread": "spread"}
    case(TOPO, 2792, "should handle multiple dependent affinities",
         [pod("db", labels=db), pod("web", labels=web, affinity=[term(db, HOST)]),
          pod("cache", labels=cache, affinity=[term(web, HOST)]), pod("ui", labels=ui, affinity=[term(cache, HOST)])],
         {"scheduled": "all", "sameNode": [["db", "web", "cache", "ui"]]}, tp())
    case(TOPO, 2827, "should fail to schedule pods with unsatisfiable dependencies",
         [pod("p", labels=db, affinity=[term(web, HOST)])], {"unscheduled": ["p"]}, tp())
    case(TOPO, 2843, "should filter pod affinity topologies by namespace, no matching pods",
         [pod("aff1", labels=S2, ns="other-ns-no-match"), pod("aff2", affinity=[term(S2, HOST)])],
         {"scheduled": ["aff1"], "unscheduled": ["aff2"]}, tp(), extra=spread10)
    case(TOPO, 2881, "should filter pod affinity topologies by namespace, matching pods namespace list",
         [pod("aff1", labels=S2, ns="other-ns-list"), pod("aff2", affinity=[term(S2, HOST, ["other-ns-list"])])],
         {"sameNode": [["aff1", "aff2"]]}, tp(), extra=spread10)
    case(TOPO, 2920, "should filter pod affinity topologies by namespace, empty namespace selector",
         [pod("aff1", labels=S2, ns="empty-ns-selector"), pod("aff2", affinity=[term(S2, HOST, ns_selector={})])],
         {"sameNode": [["aff1", "aff2"]]}, tp(), extra=spread10)
    # Taints
    case(TOPO, 3280, "should taint nodes with NodePool taints (pod tolerates every NoSchedule)",
         [pod("p", tolerations=[{"effect": "NoSchedule", "operator": "Exists"}])], {"scheduled": "all"},
         tp(taints=[{"key": "test", "value": "bar", "effect": "NoSchedule"}]))
    tainted = tp(taints=[{"key": "test-key", "value": "test-value", "effect": "NoSchedule"}])
    case(TOPO, 3290, "should schedule pods that tolerate NodePool constraints",
         [pod("exists", tolerations=[{"key": "test-key", "operator": "Exists", "effect": "NoSchedule"}]),
          pod("equal", tolerations=[{"key": "test-key", "value": "test-value", "operator": "Equal",
                                     "effect": "NoSchedule"}])], {"scheduled": "all"}, tainted)
    case(TOPO, 3290, "should schedule pods that tolerate NodePool constraints (the pods that do not tolerate)",
         [pod("missing"), pod("keymismatch", tolerations=[{"key": "invalid", "operator": "Exists"}]),
          pod("valuemismatch", tolerations=[{"key": "test-key", "operator": "Equal", "effect": "NoSchedule"}])],
         {"unscheduled": ["missing", "keymismatch", "valuemismatch"]}, tainted)
    case(TOPO, 3317, "should provision nodes with taints and schedule pods if the taint is only a startup taint",
         [pod("p")], {"scheduled": "all"},
         tp(startup=[{"key": "ignore-me", "value": "nothing-to-see-here", "effect": "NoSchedule"}]))
    case(TOPO, 3325, "should not generate taints for OpExists",
         [pod("p", tolerations=[{"key": "test-key", "operator": "Exists", "effect": "NoExecute"}])],
         {"scheduled": "all"}, tp())


# --- instance_selection_test.go ------------------------------------------------------------------------
SEL = "instance_selection_test.go"


def ip(reqs: list | None = None) -> list[dict[str, Any]]:
    return [pool(reqs=reqs if reqs is not None else [req(CT, "In", "spot", "on-demand"),
                                                     req(ARCH, "In", "arm64", "amd64")])]


def instance_selection() -> None:
    def cheap(line: int, title: str, p: dict, pools: list, labels: dict) -> None:
        case(SEL, line, title, [p], {"scheduled": "all", "cheapest": ["p"], "labels": {"p": labels}}, pools,
             catalog="assorted")

    cheap(82, "should schedule on one of the cheapest instances", pod("p"), ip(), {})
    cheap(89, "should schedule on one of the cheapest instances (pod arch = amd64)",
          pod("p", required=[req(ARCH, "In", "amd64")]), ip(), {ARCH: "amd64"})
    cheap(103, "should schedule on one of the cheapest instances (pod arch = arm64)",
          pod("p", required=[req(ARCH, "In", "arm64")]), ip(), {ARCH: "arm64"})
    cheap(116, "should schedule on one of the cheapest instances (prov arch = amd64)", pod("p"),
          ip([req(ARCH, "In", "amd64")]), {ARCH: "amd64"})
    cheap(131, "should schedule on one of the cheapest instances (prov arch = arm64)", pod("p"),
          ip([req(ARCH, "In", "arm64")]), {ARCH: "arm64"})
    cheap(146, "should schedule on one of the cheapest instances (prov os = windows)", pod("p"),
          ip([req(OS, "In", "windows")]), {OS: "windows"})
    cheap(161, "should schedule on one of the cheapest instances (pod os = windows)",
          pod("p", required=[req(OS, "In", "windows")]), ip(), {OS: "windows"})
    cheap(189, "should schedule on one of the cheapest instances (pod os = linux)",
          pod("p", required=[req(OS, "In", "linux")]), ip(), {OS: "linux"})
    cheap(215, "should schedule on one of the cheapest instances (prov zone = test-zone-2)", pod("p"),
          ip([req(ZONE, "In", "test-zone-2")]), {ZONE: "test-zone-2"})
    cheap(230, "should schedule on one of the cheapest instances (pod zone = test-zone-2)",
          pod("p", required=[req(ZONE, "In", "test-zone-2")]), ip(), {ZONE: "test-zone-2"})
    cheap(243, "should schedule on one of the cheapest instances (prov ct = spot)", pod("p"),
          ip([req(CT, "In", "spot")]), {CT: "spot"})
    cheap(258, "should schedule on one of the cheapest instances (pod ct = spot)",
          pod("p", required=[req(CT, "In", "spot")]), ip(), {CT: "spot"})
    cheap(271, "should schedule on one of the cheapest instances (prov ct = ondemand, prov zone = test-zone-1)",
          pod("p"), ip([req(CT, "In", "on-demand"), req(ZONE, "In", "test-zone-1")]),
          {CT: "on-demand", ZONE: "test-zone-1"})
    cheap(291, "should schedule on one of the cheapest instances (pod ct = spot, pod zone = test-zone-1)",
          pod("p", required=[req(CT, "In", "spot"), req(ZONE, "In", "test-zone-1")]), ip(),
          {CT: "spot", ZONE: "test-zone-1"})
    cheap(310, "should schedule on one of the cheapest instances (prov ct = spot, pod zone = test-zone-2)",
          pod("p", required=[req(ZONE, "In", "test-zone-2")]), ip([req(CT, "In", "spot")]),
          {CT: "spot", ZONE: "test-zone-2"})
    cheap(330, "should schedule on one of the cheapest instances (prov ct = ondemand/test-zone-1/arm64/windows)",
          pod("p"), ip([req(CT, "In", "on-demand"), req(ZONE, "In", "test-zone-1"), req(ARCH, "In", "arm64"),
                        req(OS, "In", "windows")]),
          {CT: "on-demand", ZONE: "test-zone-1", ARCH: "arm64", OS: "windows"})
    cheap(362, "should schedule on one of the cheapest instances (prov = spot/test-zone-2, pod = amd64/linux)",
          pod("p", required=[req(ARCH, "In", "amd64"), req(OS, "In", "linux")]),
          ip([req(CT, "In", "spot"), req(ZONE, "In", "test-zone-2")]),
          {CT: "spot", ZONE: "test-zone-2", ARCH: "amd64", OS: "linux"})
    cheap(396, "should schedule on one of the cheapest instances (pod ct = spot/test-zone-2/amd64/linux)",
          pod("p", required=[req(ARCH, "In", "amd64"), req(OS, "In", "linux"), req(CT, "In", "spot"),
                             req(ZONE, "In", "test-zone-2")]), ip(),
          {CT: "spot", ZONE: "test-zone-2", ARCH: "amd64", OS: "linux"})
    case(SEL, 428, "should not schedule if no instance type matches selector (pod arch = arm)",
         [pod("p", required=[req(ARCH, "In", "arm64")])], {"unscheduled": ["p"]}, ip(),
         catalog={"assorted": True, "without": {"arch": "arm64"}})
    case(SEL, 448, "should not schedule if no instance type matches selector (pod arch = arm zone=test-zone-2)",
         [pod("p", required=[req(ARCH, "In", "arm64"), req(ZONE, "In", "test-zone-2")])], {"unscheduled": ["p"]},
         ip(), catalog={"assorted": True, "without": {"arch": "arm64", "zone": "test-zone-2"}})
    case(SEL, 477, "should not schedule if no instance type matches selector (prov arch = arm / pod zone=test-zone-2)",
         [pod("p", required=[req(ZONE, "In", "test-zone-2")])], {"unscheduled": ["p"]},
         ip([req(ARCH, "In", "arm64")]),
         catalog={"assorted": True, "without": {"arch": "arm64", "zone": "test-zone-2"}})
    for cpu, mem in ((0.1, 0.1), (1.0, 1.0), (2, 2), (2.5, 4), (4, 8), (8, 16), (16, 32)):
        case(SEL, 509, f"should schedule on an instance with enough resources (3 pods of {cpu} CPU, {mem}Gi: one node)",
             pods("p", 3, requests={"cpu": f"{cpu:0.1f}", "memory": f"{mem:0.1f}Gi"}), {"scheduled": "all", "nodes": 1},
             ip(), catalog="assorted")
    two_prices = [{"name": n, "os": ["linux"], "resources": {"cpu": "1", "memory": "1Gi"},
                   "offerings": [["on-demand", "test-zone-1a", od], ["spot", "test-zone-1a", spot]]}
                  for n, od, spot in (("test-instance1", 1.0, 0.2), ("test-instance2", 1.3, 0.1))]
    case(SEL, 563, "should schedule on cheaper on-demand instance even when spot price ordering would place other "
         "instance types first", [pod("p")], {"types": {"p": "test-instance1"}},
         [pool(reqs=[req(CT, "In", "on-demand")])], catalog=two_prices)
    # MinValues
    mv_types = [{"name": n, "arch": "arm64", "os": ["linux"], "resources": {"cpu": c, "memory": f"{c}Gi"},
                 "offerings": [["spot", "test-zone-1-spot", pr]]}
                for n, c, pr in (("instance-type-1", "1", 0.52), ("instance-type-2", "4", 1.0))]
    two_pods = [pod("p1", requests={"cpu": "0.9", "memory": "0.9Gi"}),
                pod("p2", requests={"cpu": "0.9", "memory": "0.9Gi"})]
    case(SEL, 621, "should schedule respecting the minValues from instance-type requirements", two_pods,
         {"scheduled": "all", "differentNodes": [["p1", "p2"]]},
         [pool(reqs=[req(IT, "In", "instance-type-1", "instance-type-2", min_values=2)])], catalog=mv_types)
    case(SEL, 621, "without minValues both pods share instance-type-2 (the case's own premise)", two_pods,
         {"scheduled": "all", "sameNode": [["p1", "p2"]], "types": {"p1": "instance-type-2"}},
         [pool(reqs=[req(IT, "In", "instance-type-1", "instance-type-2")])], catalog=mv_types)
    gen_key = "karpenter/numerical-value"

    def gen_types(*rows: tuple[str, str, float, str]) -> list[dict[str, Any]]:
        return [{"name": n, "os": ["linux"], "labels": {gen_key: g}, "resources": {"cpu": c, "memory": f"{c}Gi"},
                 "offerings": [["spot", "test-zone-1-spot", pr]]} for n, c, pr, g in rows]

    three = gen_types(("instance-type-1", "1", 0.52, "2"), ("instance-type-2", "1", 1.0, "3"),
                      ("instance-type-3", "4", 1.2, "4"))
    case(SEL, 693, "should schedule respecting the minValues in Gt operator", two_pods,
         {"scheduled": "all", "differentNodes": [["p1", "p2"]]}, [pool(reqs=[req(gen_key, "Gt", "2", min_values=2)])],
         catalog=three)
    pods_gt = [pod(f"p{i}", requests={"cpu": "0.9", "memory": "0.9Gi"}, required=[req(gen_key, "Gt", "2")])
               for i in (1, 2)]
    case(SEL, 784, "scheduler should fail if the minValues in Gt operator is not satisfied", pods_gt,
         {"unscheduled": ["p1", "p2"]}, [pool(reqs=[req(gen_key, "Exists", min_values=2)])],
         catalog=gen_types(("instance-type-1", "1", 0.52, "2"), ("instance-type-2", "4", 1.0, "3")))
    three_lt = gen_types(("instance-type-1", "1", 0.52, "2"), ("instance-type-2", "2", 1.0, "3"),
                         ("instance-type-3", "4", 1.2, "4"))
    case(SEL, 870, "should schedule respecting the minValues in Lt operator", two_pods,
         {"scheduled": "all", "differentNodes": [["p1", "p2"]]}, [pool(reqs=[req(gen_key, "Lt", "4", min_values=2)])],
         catalog=three_lt)
    case(SEL, 961, "scheduler should fail if the minValues in Lt operator is not satisfied", two_pods,
         {"unscheduled": ["p1", "p2"]}, [pool(reqs=[req(gen_key, "Lt", "4", min_values=2)])],
         catalog=gen_types(("instance-type-1", "2", 0.52, "2"), ("instance-type-2", "4", 1.2, "4")))
    ten = {"assorted": True, "first": 10}
    case(SEL, 1234, "schedule should fail if minimum number of InstanceTypes is not met as per the minValues in the "
         "requirement", [pod("p")], {"unscheduled": ["p"]}, [pool(reqs=[req(IT, "Exists", min_values=11)])],
         catalog=ten)


def main() -> None:
    suite()
    topology()
    instance_selection()
    OUT.mkdir(exist_ok=True)
    total = 0
    for name, vectors in VECTORS.items():
        (OUT / name.replace("_test.go", ".json")).write_text(json.dumps(vectors, indent=1) + "\n")
        total += len(vectors)
    print(f"{total} vectors")


if __name__ == "__main__":
    main()
