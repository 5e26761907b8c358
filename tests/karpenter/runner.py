"""Run one Karpenter scheduling scenario vector through `make_plan` and check what Karpenter expects.

A vector (tests/karpenter/vectors/*.json) is facts taken from a case of kubernetes-sigs/karpenter
`pkg/controllers/provisioning/scheduling/*_test.go`: the instance types of Karpenter's fake cloud
provider (`pkg/cloudprovider/fake`: names, resources, architectures, operating systems, offerings,
`PriceFromResources`, 100m / 10Mi kube-reserved), the NodePools and pods as manifests, and the
outcome the case asserts. `check` returns the list of failed expectations (empty: pass).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from provisioner.catalog import InstanceType, Offering
from provisioner.nodepool import NodePool
from provisioner.plan import Plan, make_plan
from provisioner.pods import LabelSelector, read_manifests
from provisioner.resources import Resources, amount

ZONES3 = ("test-zone-1", "test-zone-2", "test-zone-3")
DEFAULT_OFFERINGS = (("spot", "test-zone-1"), ("spot", "test-zone-2"), ("on-demand", "test-zone-1"),
                     ("on-demand", "test-zone-2"), ("on-demand", "test-zone-3"))
GPU_A, GPU_B = "fake.com/vendor-a", "fake.com/vendor-b"


def price_from(resources: Mapping[str, Any]) -> float:
    """fake.PriceFromResources: 0.1 per CPU, 0.1 per GB of memory, 1.0 for a fake GPU resource."""
    price = 0.0
    for k, v in resources.items():
        if k == "cpu":
            price += 0.1 * amount("cpu", v) / 1000
        elif k == "memory":
            price += 0.1 * amount("memory", v) * 2**20 / 1e9
        elif k in (GPU_A, GPU_B):
            price += 1.0
    return price


def fake_types(spec: Mapping[str, Any]) -> list[InstanceType]:
    """One fake.NewInstanceType, one InstanceType per operating system it supports."""
    res = {"cpu": "4", "memory": "4Gi", "pods": "5", **dict(spec.get("resources") or {})}
    cpu_m, mem = amount("cpu", res["cpu"]), amount("memory", res["memory"])
    pods = int(res["pods"])
    extra = {k: amount(k, v) for k, v in res.items() if k not in ("cpu", "memory", "pods")}
    price = spec.get("price", price_from(res))
    offerings = tuple(Offering(ct, z, float(o_price), available)
                      for ct, z, o_price, available in (
                          (o[0], o[1], o[2] if len(o) > 2 else price, o[3] if len(o) > 3 else True)
                          for o in spec.get("offerings") or [(ct, z) for ct, z in DEFAULT_OFFERINGS]))
    large = cpu_m > 4000 and mem > 8192
    labels = {"node.kubernetes.io/instance-type": spec["name"], "kubernetes.io/arch": spec.get("arch", "amd64"),
              "size": "large" if large else "small", "integer": str(cpu_m // 1000), **(spec.get("labels") or {})}
    if large:
        labels["special"] = "optional"
    allocatable = Resources.from_amounts({"cpu": cpu_m - 100, "memory": mem - 10, **extra}, pods)
    out = []
    for os in spec.get("os") or ["linux", "windows", "darwin"]:
        out.append(InstanceType(
            name=spec["name"], vcpu=cpu_m // 1000, memory_mib=mem, architecture=labels["kubernetes.io/arch"],
            family="fake", category="fake", generation=1, gpu_count=0, gpu_name="", gpu_memory_mib=0, max_pods=pods,
            allocatable=allocatable, labels=labels | {"kubernetes.io/os": os}, offerings=offerings))
    return out


def default_catalog() -> list[dict[str, Any]]:
    """fake.CloudProvider's default instance types."""
    return [
        {"name": "default-instance-type"},
        {"name": "small-instance-type", "resources": {"cpu": "2", "memory": "2Gi"}},
        {"name": "gpu-vendor-instance-type", "resources": {GPU_A: "2"}},
        {"name": "gpu-vendor-b-instance-type", "resources": {GPU_B: "2"}},
        {"name": "arm-instance-type", "arch": "arm64", "os": ["ios", "linux", "windows", "darwin"],
         "resources": {"cpu": "16", "memory": "128Gi"}},
        {"name": "single-pod-instance-type", "resources": {"pods": "1"}},
    ]


def sized_catalog(n: int) -> list[dict[str, Any]]:
    """fake.InstanceTypes(n): fake-it-i with i+1 CPUs, 2(i+1) GiB, 10(i+1) pods."""
    return [{"name": f"fake-it-{i}", "resources": {"cpu": str(i + 1), "memory": f"{(i + 1) * 2}Gi",
                                                   "pods": str((i + 1) * 10)}} for i in range(n)]


def assorted_catalog() -> list[dict[str, Any]]:
    """fake.InstanceTypesAssorted: every cpu × memory × zone × capacity type × os × arch, one offering each."""
    out = []
    for cpu in (1, 2, 4, 8, 16, 32, 64):
        for mem in (1, 2, 4, 8, 16, 32, 64, 128):
            for zone in ZONES3:
                for ct in ("spot", "on-demand"):
                    for os in ("linux", "windows"):
                        for arch in ("amd64", "arm64"):
                            res = {"cpu": str(cpu), "memory": f"{mem}Gi"}
                            out.append({"name": f"{cpu}-cpu-{mem}-mem-{arch}-{os}-{zone}-{ct}", "arch": arch,
                                        "os": [os], "resources": res, "offerings": [[ct, zone, price_from(res)]]})
    return out


def catalog_of(vector: Mapping[str, Any]) -> list[InstanceType]:
    spec = vector.get("catalog", "default")
    if spec == "default":
        rows = default_catalog()
    elif spec == "assorted":
        rows = assorted_catalog()
    elif isinstance(spec, Mapping) and spec.get("assorted"):
        rows = assorted_catalog()
        without = spec.get("without") or {}
        rows = [r for r in rows if not (r["arch"] == without.get("arch", r["arch"])
                                        and r["offerings"][0][1] == without.get("zone", r["offerings"][0][1]))]
        rows = rows[:spec.get("first", len(rows))]
    elif isinstance(spec, Mapping) and "sized" in spec:
        rows = sized_catalog(int(spec["sized"]))
        for name, extra in (spec.get("extra") or {}).items():
            for r in rows:
                if r["name"] == name:
                    r["resources"] = {**r["resources"], **extra}
    else:
        rows = list(spec)
    return [t for row in rows for t in fake_types(row)]


def run(vector: Mapping[str, Any]) -> Plan:
    catalog = catalog_of(vector)
    pools = [NodePool.model_validate(d) for d in vector.get("nodePools") or []]
    read = read_manifests(vector["pods"])
    return make_plan(read.groups, pools, catalog, (), read.overhead, algorithm=vector.get("algorithm", "surge"))


def _pod_labels(vector: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, str]]]:
    out = {}
    for d in vector["pods"]:
        meta = d.get("metadata") or {}
        out[meta["name"]] = (meta.get("namespace") or "default", meta.get("labels") or {})
    return out


def check(vector: Mapping[str, Any]) -> list[str]:
    """The expectations of the vector that the plan does not meet."""
    try:
        plan = run(vector)
    except ValueError as exc:
        return [] if vector["expect"].get("error") else [f"error: {exc}"]
    exp = vector["expect"]
    if exp.get("error"):
        return ["expected an input error"]
    node_of = {pod.split("/")[-1]: i for i, n in enumerate(plan.nodes) for pod in n.pods}
    fails = []
    names = [d["metadata"]["name"] for d in vector["pods"] if d.get("kind") == "Pod"]
    scheduled = names if exp.get("scheduled") == "all" else exp.get("scheduled") or []
    fails += [f"{p} not scheduled" for p in scheduled if p not in node_of]
    fails += [f"{p} scheduled but Karpenter leaves it pending" for p in exp.get("unscheduled") or [] if p in node_of]
    if "scheduledCount" in exp and len(node_of) != exp["scheduledCount"]:
        fails.append(f"{len(node_of)} pods scheduled, expected {exp['scheduledCount']}")
    if "nodes" in exp and len(plan.nodes) != exp["nodes"]:
        fails.append(f"{len(plan.nodes)} nodes, expected {exp['nodes']}")
    for pod, labels in (exp.get("labels") or {}).items():
        if pod not in node_of:
            fails.append(f"{pod} not scheduled (labels expected)")
            continue
        have = plan.nodes[node_of[pod]].labels
        for k, v in labels.items():
            if v is None and k in have:
                fails.append(f"{pod}: node has label {k}")
            elif v is not None and isinstance(v, str) and have.get(k) != v:
                fails.append(f"{pod}: node label {k}={have.get(k)!r}, expected {v!r}")
            elif isinstance(v, list) and have.get(k) not in v:
                fails.append(f"{pod}: node label {k}={have.get(k)!r}, expected one of {v}")
            elif isinstance(v, Mapping) and "not" in v and have.get(k) == v["not"]:
                fails.append(f"{pod}: node label {k}={have.get(k)!r}, expected anything else")
    for group in exp.get("sameNode") or []:
        if len({node_of.get(p, -1 - i) for i, p in enumerate(group)}) != 1:
            fails.append(f"{group} not on one node")
    for group in exp.get("differentNodes") or []:
        nodes = [node_of.get(p) for p in group]
        if None in nodes or len(set(nodes)) != len(nodes):
            fails.append(f"{group} not on distinct nodes")
    for a, b, key, same in exp.get("sameLabel") or []:
        if a not in node_of or b not in node_of:
            fails.append(f"{a}/{b} not scheduled")
            continue
        la, lb = plan.nodes[node_of[a]].labels.get(key), plan.nodes[node_of[b]].labels.get(key)
        if (la == lb) != same:
            fails.append(f"{a} and {b}: {key} {la!r} vs {lb!r}, expected {'equal' if same else 'different'}")
    pods = _pod_labels(vector)
    for sk in exp.get("skew") or []:
        sel = None if sk.get("selector") is None else LabelSelector.parse(sk["selector"], "selector")
        counts: Counter[str] = Counter()
        for pod, i in node_of.items():
            _ns, labels = pods.get(pod, ("default", {}))
            if sel is not None and not sel.matches(labels):
                continue
            key = sk["key"]
            domain = f"node-{i}" if key == "kubernetes.io/hostname" else plan.nodes[i].labels.get(key)
            counts[str(domain)] += 1
        got = sorted(counts.values(), reverse=True)
        if "counts" in sk and got != sorted(sk["counts"], reverse=True):
            fails.append(f"skew on {sk['key']}: {got}, expected {sorted(sk['counts'], reverse=True)}")
        if "max" in sk and got and max(got) > sk["max"]:
            fails.append(f"skew on {sk['key']}: {got} has a domain above {sk['max']}")
    if exp.get("cheapest"):
        catalog = catalog_of(vector)
        lowest = min(o.price for t in catalog for o in t.offerings if o.available)
        for pod in exp["cheapest"]:
            if pod in node_of and abs(plan.nodes[node_of[pod]].price_per_hour - lowest) > 1e-9:
                fails.append(f"{pod}: node price {plan.nodes[node_of[pod]].price_per_hour}, cheapest is {lowest}")
    for pod, t in (exp.get("types") or {}).items():
        if pod in node_of and plan.nodes[node_of[pod]].instance_type not in ([t] if isinstance(t, str) else t):
            fails.append(f"{pod}: type {plan.nodes[node_of[pod]].instance_type}, expected {t}")
    if "allTypes" in exp:
        bad = {n.instance_type for n in plan.nodes} - set(exp["allTypes"])
        if bad:
            fails.append(f"node types {sorted(bad)} not in {exp['allTypes']}")
    return fails
