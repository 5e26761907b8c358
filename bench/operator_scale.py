"""The operator at scale: N ScaledObjects with Redis list triggers polled every second, on one core.

The operator runs as `surge operator` in its own process pinned to CPU 0; the API emulator (filled
with N Deployments and N ScaledObjects) and redis-server share CPU 1. A tenth of the lists hold
work; during the measurement 50 lists per second change, so targets scale and status is written.
From the operator's own /metrics: how late cycles start behind schedule (surge_poll_lag_seconds,
p50/p99 as histogram bucket bounds), cycles per object per second; from /proc: RSS and CPU.

    python bench/operator_scale.py [N]      (default 10000; writes docs/benchmarks-operator.md)
"""

from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tests.fixtures.redis import redis_argv  # noqa: E402
from tests.servers import free_port, run_server, wait_for_port  # noqa: E402

WARMUP_S, MEASURE_S, CHURN_PER_S = int(os.environ.get("WARMUP_S", 30)), int(os.environ.get("MEASURE_S", 60)), 50


def scrape(port: int) -> dict[str, float]:
    for attempt in range(10):  # a saturated operator answers late, not never
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
            break
        except TimeoutError:
            if attempt == 9:
                raise
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "surge_poll_lag_seconds":
            continue
        for s in family.samples:
            key = s.name + (f"{{le={s.labels['le']}}}" if "le" in s.labels else "")
            out[key] = s.value
    return out


def quantile_bound(before: dict[str, float], after: dict[str, float], q: float) -> str:
    """Upper bound of the histogram bucket holding quantile q of the observations in between."""
    total = after["surge_poll_lag_seconds_count"] - before.get("surge_poll_lag_seconds_count", 0)
    buckets = sorted((float(k.split("le=")[1].rstrip("}")), after[k] - before.get(k, 0))
                      for k in after if k.startswith("surge_poll_lag_seconds_bucket"))
    for le, count in buckets:
        if count >= q * total:
            return f"≤ {le:g}"
    return "> largest bucket"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    os.environ["PYTHONPATH"] = str(ROOT)  # the emulator runs from its own working directory
    rng = random.Random(7)
    with ExitStack() as stack:
        rport = free_port()
        stack.enter_context(run_server(["taskset", "-c", "1", *redis_argv(rport, "--notify-keyspace-events", "Kl")],
                                       rport))
        r = redis.Redis(port=rport)
        pipe = r.pipeline()
        for i in range(0, n, 10):
            pipe.rpush(f"q{i}", *["x"] * rng.randint(1, 200))
        pipe.execute()
        kport, mport = free_port(), free_port()
        stack.enter_context(run_server(
            ["taskset", "-c", "1", sys.executable, "-m", "tests.k8s.serve", "--port", str(kport),
             "--scaledobjects", str(n), "--redis", f"127.0.0.1:{rport}"], kport, timeout_s=300))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SURGE_LOG_LEVEL": "warning"}
        (ROOT / "out").mkdir(exist_ok=True)
        log = stack.enter_context(open(ROOT / "out" / "operator-scale.log", "wb"))
        op = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "autoscaler.cli", "operator",
                               "--server", f"http://127.0.0.1:{kport}", "--no-leader-elect", "--port", str(mport)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
        stack.callback(op.kill)
        wait_for_port(mport, 60, op)
        t0 = time.time()
        while scrape(mport).get("surge_poll_lag_seconds_count", 0) < 3 * n:  # every object polled thrice
            if time.time() - t0 > 600:
                raise RuntimeError("the operator did not get through three rounds in 10 minutes")
            time.sleep(1)
        startup = time.time() - t0
        time.sleep(WARMUP_S)
        before, cpu0, t_start = scrape(mport), cpu_s(op.pid), time.time()
        rss_peak = 0.0
        while time.time() - t_start < MEASURE_S:
            tick = time.time()
            pipe = r.pipeline()
            for _ in range(CHURN_PER_S):
                i = rng.randrange(n)
                if rng.random() < 0.5:
                    pipe.delete(f"q{i}")
                else:
                    pipe.rpush(f"q{i}", *["x"] * rng.randint(1, 100))
            pipe.execute()
            rss_peak = max(rss_peak, rss_mb(op.pid))
            time.sleep(max(0.0, 1.0 - (time.time() - tick)))
        after, cpu1, elapsed = scrape(mport), cpu_s(op.pid), time.time() - t_start
    cycles = after["surge_poll_lag_seconds_count"] - before["surge_poll_lag_seconds_count"]
    rows = [("ScaledObjects", f"{n:,}"), ("polling interval", "1 s"),
            ("time to first three rounds (startup)", f"{startup:.0f} s"),
            ("cycles per object per second (goal 1.0)", f"{cycles / n / elapsed:.2f}"),
            ("schedule lag p50", f"{quantile_bound(before, after, 0.5)} s"),
            ("schedule lag p99 (goal ≤ 1 s)", f"{quantile_bound(before, after, 0.99)} s"),
            ("operator CPU (one core = 100%)", f"{100 * (cpu1 - cpu0) / elapsed:.0f}%"),
            ("operator RSS peak (goal ≤ 500 MB)", f"{rss_peak:.0f} MB"),
            ("list changes during measurement", f"{CHURN_PER_S}/s for {MEASURE_S} s")]
    table = "\n".join(["| measure | value |", "|---|---:|", *(f"| {k} | {v} |" for k, v in rows)])
    print(table)
    (ROOT / "docs" / "benchmarks-operator.md").write_text(
        "# Operator at scale\n\nMeasured by `bench/operator_scale.py` "
        f"({platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}). `surge operator` "
        "pinned to one core; the API emulator and redis-server (keyspace notifications on) on the other. "
        "Lag is how late a polling cycle starts after its due time, read from the operator's "
        "`surge_poll_lag_seconds` histogram (so quantiles are bucket bounds). KEDA reportedly reached "
        "~35 GiB at ~3k Kafka ScaledObjects (kedacore/keda#7453); that is a different trigger type and "
        "not measured here.\n\n" + table + "\n")


if __name__ == "__main__":
    main()
