"""`surge simulate` over the triggers whose signal is not a plain lag: RabbitMQ (per mode and
protocol, as KEDA counts), NATS JetStream, and the arbitrary-value triggers (postgresql, mysql,
metrics-api), which are simulated as the backlog and say so; and formula-only triggers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from autoscaler.cli import app
from autoscaler.simulate.inputs import build_setup, load_scaled_object
from autoscaler.simulate.policy import Assumptions, policy_named
from autoscaler.simulate.run import simulate
from autoscaler.simulate.signals import SimTrigger, sim_triggers
from autoscaler.simulate.trace import Trace
from tests.test_simulate import files

HEAD = """
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: worker}
spec:
  scaleTargetRef: {name: worker}
  minReplicaCount: 0
  maxReplicaCount: 50
"""
# one trigger per type; every target is 10 (items, or items/s for MessageRate) per replica
TRIGGERS = {
    "rabbitmq-queue": """  triggers:
    - type: rabbitmq
      name: q
      metadata: {host: "http://guest:guest@rabbit:15672/", queueName: jobs, mode: QueueLength, value: "10"}
""",
    "rabbitmq-rate": """  triggers:
    - type: rabbitmq
      name: q
      metadata: {protocol: http, queueName: jobs, mode: MessageRate, value: "10"}
""",
    "nats-jetstream": """  triggers:
    - type: nats-jetstream
      name: js
      metadata: {natsServerMonitoringEndpoint: "nats:8222", account: "$G", stream: s, consumer: c,
                 lagThreshold: "10"}
""",
    "postgresql": """  triggers:
    - type: postgresql
      name: pg
      metadata: {host: db, port: "5432", userName: u, dbName: d, sslmode: disable, passwordFromEnv: PW,
                 query: "SELECT count(*) FROM jobs WHERE state = 'queued'", targetQueryValue: "10"}
""",
    "mysql": """  triggers:
    - type: mysql
      name: my
      metadata: {host: db, port: "3306", username: u, dbName: d, passwordFromEnv: PW,
                 query: "SELECT count(*) FROM jobs", queryValue: "10"}
""",
    "metrics-api": """  triggers:
    - type: metrics-api
      name: api
      metadata: {url: "http://svc/stats", valueLocation: queue.waiting, targetValue: "10"}
""",
    # formula-only triggers: neither has a target of its own, the formula's target counts
    "formula": """  advanced:
    scalingModifiers: {formula: "pg + api", target: "20", activationTarget: "0"}
  triggers:
    - type: postgresql
      name: pg
      metadata: {host: db, port: "5432", userName: u, dbName: d, sslmode: disable, passwordFromEnv: PW,
                 query: "SELECT count(*) FROM jobs"}
    - type: metrics-api
      name: api
      metadata: {url: "http://svc/stats", valueLocation: waiting}
""",
}
MAPPING = {
    "rabbitmq-queue": "trigger q (rabbitmq, mode QueueLength): reads ready + unacknowledged messages",
    "rabbitmq-rate": "trigger q (rabbitmq, mode MessageRate): reads the publish rate",
    "postgresql": "assumption: trigger pg (postgresql) reads the queue's backlog (items waiting) as the query's "
                  "result",
    "mysql": "assumption: trigger my (mysql) reads the queue's backlog (items waiting) as the query's result",
    "metrics-api": "assumption: trigger api (metrics-api) reads the queue's backlog (items waiting) as the value "
                   "at valueLocation",
    "formula": "assumption: trigger pg (postgresql) reads the queue's backlog",
}


def step_csv(path: Path) -> Path:
    """10 min idle, 20 min of 50 items/s (5 pods of 10/s), 20 min idle."""
    path.write_text("timestamp_seconds,value\n" + "".join(f"{i * 60},{3000 if 10 <= i < 30 else 0}\n"
                                                          for i in range(50)))
    return path


@pytest.mark.parametrize("kind", list(TRIGGERS))
def test_each_trigger_type_is_simulated_through_the_cli(tmp_path: Path, kind: str) -> None:
    paths = files(tmp_path, so=HEAD + TRIGGERS[kind])
    result = CliRunner().invoke(app, ["simulate", "--trace", str(step_csv(tmp_path / "t.csv")), "--scale", "1",
                                      "--spot-interruptions", "0", "--scaledobject", str(paths["so"]),
                                      "--nodepool", str(paths["np"]), "--deployment", str(paths["dep"]),
                                      "--policy", "surge", "--format", "json", "--report", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert not [n for n in out["notes"] if "not simulated" in n], out["notes"]
    if kind in MAPPING:
        assert any(n.startswith(MAPPING[kind]) for n in out["notes"]), out["notes"]
    assert out["workload"] == "queue"  # a queue never drops, even one scaled on a rate
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["notes"] == out["notes"]  # the assumptions travel with the report
    d = report["details"]["surge"]
    assert d["arrived"] == 60000 and d["dropped"] == 0 and d["backlog_end"] == 0  # all the work got done
    assert d["replica_changes"] >= 2  # up from zero and back down


def run_series(tmp_path: Path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    paths = files(tmp_path, so=HEAD + TRIGGERS[kind])
    a = Assumptions(scale=1.0, spot_interruptions_per_node_hour=0.0)
    setup, _ = build_setup(paths["so"], [paths["np"]], paths["dep"], a)
    trace = Trace("step", 0.0, 60.0, np.array([3000.0 if 10 <= i < 30 else 0.0 for i in range(50)]))
    r = simulate(trace, setup, policy_named("surge"), a)
    return np.array(r.series.t), np.array(r.series.replicas)


@pytest.mark.parametrize("kind", list(TRIGGERS))
def test_replicas_follow_the_load(tmp_path: Path, kind: str) -> None:
    t, replicas = run_series(tmp_path, kind)
    assert replicas[t < 600].max() == 0  # no work, no pods
    assert replicas[(t >= 600) & (t < 1800)].max() >= 5  # 50 items/s need 5 pods of 10/s
    assert replicas[-1] == 0  # back to zero once the work is done and the cooldown passed


def test_message_rate_holds_the_rate_not_the_backlog(tmp_path: Path) -> None:
    # under steady load, 50 published/s ÷ 10 per replica is exactly 5 replicas, whatever waits
    t, replicas = run_series(tmp_path, "rabbitmq-rate")
    assert set(replicas[(t >= 1200) & (t < 1800)]) == {5}


def so_triggers(tmp_path: Path, text: str) -> list[SimTrigger]:
    (tmp_path / "so.yaml").write_text(HEAD + text)
    return sim_triggers(load_scaled_object(tmp_path / "so.yaml"))


@pytest.mark.parametrize(("metadata", "signal"), [
    ('{host: "http://r:15672/", queueName: j, mode: QueueLength, value: "5"}', "backlog+inflight"),
    ('{host: "http://r:15672/", queueName: j, mode: QueueLength, value: "5", excludeUnacknowledged: "true"}',
     "backlog"),
    ('{host: "amqp://r:5672/", queueName: j, mode: QueueLength, value: "5"}', "backlog"),  # declare: ready only
    ('{host: "amqp://r:5672/", queueName: j, queueLength: "5"}', "backlog"),  # the deprecated form
    ('{protocol: http, queueName: j, mode: MessageRate, value: "5"}', "rate"),
    ('{host: "http://r:15672/", queueName: j, mode: DeliverGetRate, value: "5"}', "none"),
])
def test_rabbitmq_signal_follows_mode_and_protocol(tmp_path: Path, metadata: str, signal: str) -> None:
    (trig,) = so_triggers(tmp_path, f"  triggers:\n    - type: rabbitmq\n      metadata: {metadata}\n")
    assert trig.signal == signal and trig.target == 5.0
    if signal == "none":
        assert "only QueueLength and MessageRate are" in trig.note


def test_rabbitmq_without_a_host_says_which_protocol_it_assumed(tmp_path: Path) -> None:
    (trig,) = so_triggers(tmp_path, "  triggers:\n    - type: rabbitmq\n      metadata: {queueName: j, value: '5', "
                                    "mode: QueueLength}\n      authenticationRef: {name: rabbit}\n")
    assert trig.signal == "backlog" and "the AMQP protocol is assumed" in trig.note


def test_readings_per_signal() -> None:
    # backlog 30 waiting, 12.5 in flight, 7 arriving per second
    def read(signal: str, on_backlog: bool = False, activation: float = 0.0) -> tuple[float | None, bool]:
        r = SimTrigger("k", signal, 10.0, activation, active_on_backlog=on_backlog).reading(30.0, 12.5, 7.0)  # type: ignore[arg-type]
        return r.value, r.active

    assert read("backlog") == (30.0, True)
    assert read("backlog+inflight") == (42.0, True)  # whole items
    assert read("rate") == (7.0, True)
    assert read("none") == (0.0, False)
    assert read("rate", activation=8.0) == (7.0, False)
    # RabbitMQ MessageRate stays active while messages wait, as KEDA's scaler does
    assert read("rate", on_backlog=True, activation=8.0) == (7.0, True)


def test_formula_only_triggers_reach_the_engine_by_name(tmp_path: Path) -> None:
    triggers = so_triggers(tmp_path, TRIGGERS["formula"])
    assert [(t.key, t.signal) for t in triggers] == [("pg", "backlog"), ("api", "backlog")]
    paths = files(tmp_path, so=HEAD + TRIGGERS["formula"])
    setup, _ = build_setup(paths["so"], [paths["np"]], paths["dep"], Assumptions(scale=1.0))
    assert setup.spec.modifiers is not None and setup.spec.modifiers.formula == "pg + api"
