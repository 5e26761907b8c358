"""The ScaledObject controller and a running handover (`surge.sh/handover` on the target): it
decides on the replicas it owns and writes desired + the provisioner's extras, so the two
controllers do not fight over a draining node's stand-in pods. Against the API emulator and a
real redis-server.
"""

from __future__ import annotations

import time

from provisioner.disruption import HANDOVER, dump_handover
from tests.fixtures.redis import cli
from tests.k8s.fixture import K8s
from tests.servers import Server
from tests.test_operator_e2e import deployment, scaled_object, until
from tests.test_operator_watch import SO, operator, replicas


async def test_the_operator_writes_desired_plus_handover_extras(k8s_api: K8s, redis_plain: Server) -> None:
    em = k8s_api.emulator
    dep = deployment("billing", replicas=5)  # 3 of the operator's + 2 the provisioner added for node-b
    # node-old's entry outlived its handover (its provisioner died): it no longer counts
    dep["metadata"]["annotations"] = {HANDOVER: dump_handover({"node-b": (2, time.time() + 600),
                                                               "node-old": (4, time.time() - 1)})}
    em.put("apps/v1", "deployments", dep)
    em.put(*SO, scaled_object("billing", "billing", {"address": redis_plain.address, "listName": "invoices",
                                                     "listLength": "5"}))
    cli(redis_plain.port, "DEL", "invoices")
    cli(redis_plain.port, "RPUSH", "invoices", *["i"] * 12)  # 12 / 5 → 3 replicas: what it owns already
    async with operator(k8s_api):
        await until(lambda: (em.get(*SO, "jobs", "billing").get("status") or {}).get("health", {})
                    .get("q", {}).get("status") == "Happy")
        assert replicas(k8s_api, "billing") == 5  # the extras are not scaled away
        cli(redis_plain.port, "RPUSH", "invoices", *["i"] * 18)  # 30 / 5 → 6, plus the 2 extras
        await until(lambda: replicas(k8s_api, "billing") == 8)
        # the provisioner ends the handover: replicas and annotation in one patch
        dep = em.get("apps/v1", "deployments", "jobs", "billing")
        em.put("apps/v1", "deployments", dep | {"metadata": dep["metadata"] | {"annotations": {}},
                                                "spec": dep["spec"] | {"replicas": 6}})
        cli(redis_plain.port, "RPUSH", "invoices", *["i"] * 10)  # 40 / 5 → 8, no extras any more
        await until(lambda: replicas(k8s_api, "billing") == 8)
        writes = [w.replicas for w in em.scale_writes]
        # its own view went 3 → 6 (+ the 2 extras written); after the handover, on to 8 (the HPA's
        # scale-up limit may take a step between)
        events = [e["message"] for e in em.all("v1", "events") if e["message"].startswith("scaled")]
        assert writes[0] == 8 and events[0].startswith("scaled Deployment/billing from 3 to 6"), (writes, events)
        assert writes[-1] == 8 and max(writes) == 8, writes
