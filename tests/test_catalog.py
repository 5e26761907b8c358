"""The embedded catalog: Karpenter's allocatable numbers reproduced for every instance type."""

from __future__ import annotations

from provisioner.catalog import allocatable, kube_reserved_cpu_m, load_catalog, snapshot_rows
from provisioner.resources import Resources, quantity


def test_allocatable_formula_matches_karpenter_for_every_type() -> None:
    rows = snapshot_rows()
    assert len(rows) == 1363
    mismatches = []
    for r in rows:
        expected = r["karpenter_allocatable"]
        got = allocatable(r["vcpu"], r["memory_mib"], r["architecture"], int(expected["pods"]))
        if (got.cpu_m, got.memory_mib) != (round(quantity(expected["cpu"]) * 1000),
                                           round(quantity(expected["memory"]) / 2**20)):
            mismatches.append(r["instance_type"])
    assert mismatches == []


def test_eni_max_pods_equal_karpenters_pods() -> None:
    by_name = {r["instance_type"]: int(r["karpenter_allocatable"]["pods"]) for r in snapshot_rows()}
    catalog = load_catalog()
    assert len(catalog) == 1345  # types with both a spec and an on-demand price
    assert all(t.max_pods == by_name[t.name] for t in catalog)


def test_cpu_bands() -> None:
    assert [kube_reserved_cpu_m(n) for n in (1, 2, 4, 8, 96)] == [60, 70, 80, 90, 310]


def test_offerings_and_gpu_facts() -> None:
    catalog = {t.name: t for t in load_catalog(zones=("z1", "z2"), spot_prices={("m5.large", "z2"): 0.03})}
    m5 = catalog["m5.large"]
    assert [(o.capacity_type, o.zone) for o in m5.offerings] == [("on-demand", "z1"), ("on-demand", "z2"),
                                                                  ("spot", "z2")]
    assert m5.offerings[0].price == 0.096
    assert m5.allocatable == Resources(1930, 6903, 0, 29, (("ephemeral-storage", 17 * 1024),))
    p4 = catalog["p4d.24xlarge"]
    assert (p4.gpu_count, p4.gpu_name, p4.allocatable.gpu) == (8, "a100", 8)
    assert catalog["g4ad.2xlarge"].allocatable.gpu == 0  # AMD: amd.com/gpu, not nvidia.com/gpu
    assert catalog["g4ad.2xlarge"].allocatable.get("amd.com/gpu") == 1
    assert catalog["inf1.24xlarge"].allocatable.get("aws.amazon.com/neuron") == 16
    # NodePool limits count capacity (Karpenter), packing fills allocatable
    assert m5.capacity.as_tuple()[:2] == (2000, 8192) and m5.capacity.get("ephemeral-storage") == 20 * 1024
