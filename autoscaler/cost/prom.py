"""A thin Prometheus HTTP API client (instant and range queries) for cost reports.

Synchronous on purpose: `surge cost` is a batch command; queries of one chunk run on a small thread
pool so Prometheus's cores work while Python parses the previous answer.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

Sample = tuple[dict[str, str], float]


class PrometheusError(RuntimeError):
    """Prometheus could not answer a query; the message names the query and the reason."""


@dataclass
class Prometheus:
    """`stats` adds up, over all queries, the seconds spent waiting for answers (Prometheus
    evaluating + the transfer) and decoding them, and the bytes received: what a long report spends."""

    url: str
    timeout_s: float = 120.0
    stats: dict[str, float] = field(default_factory=lambda: {"queries": 0, "wait_s": 0.0, "decode_s": 0.0,
                                                             "bytes": 0})
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _count(self, wait_s: float, decode_s: float, size: int) -> None:
        with self._lock:
            self.stats["queries"] += 1
            self.stats["wait_s"] += wait_s
            self.stats["decode_s"] += decode_s
            self.stats["bytes"] += size

    def _get(self, path: str, params: dict[str, str]) -> Any:
        query = params.get("query", "")
        url = f"{self.url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
        try:
            t0 = time.perf_counter()
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                raw = resp.read()
            t1 = time.perf_counter()
            body = json.loads(raw)
            self._count(t1 - t0, time.perf_counter() - t1, len(raw))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise PrometheusError(f"Prometheus {self.url}: {exc.code} for {query!r}: {detail}") from exc
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
            # HTTPException: a server that does not speak HTTP (bad status line, truncated reply)
            raise PrometheusError(f"Prometheus {self.url} unreachable: {type(exc).__name__}: {exc}") from exc
        except ValueError as exc:
            raise PrometheusError(f"Prometheus {self.url}: answer to {query!r} is not JSON") from exc
        if not isinstance(body, dict) or ("data" not in body and body.get("status") == "success"):
            raise PrometheusError(f"Prometheus {self.url}: answer to {query!r} is not a Prometheus API response")
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus {self.url}: {body.get('errorType')}: {body.get('error')} for {query!r}")
        return body["data"]

    def query(self, promql: str, at: float) -> list[Sample]:
        """An instant vector at `at` (epoch seconds), as (labels, value) pairs."""
        data = self._get("/api/v1/query", {"query": promql, "time": f"{at:.3f}"})
        if data.get("resultType") != "vector":
            raise PrometheusError(f"Prometheus {self.url}: {promql!r} gave a {data.get('resultType')}, not a vector")
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def query_range_raw(self, promql: str, start: float, end: float, step_s: float) -> list[dict[str, Any]]:
        """A range query's `result` as Prometheus sent it ({metric, values: [[t, "v"], …]}): big
        answers are converted once, by their reader."""
        data = self._get("/api/v1/query_range", {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                                 "step": f"{step_s:g}"})
        return list(data["result"])

    def query_range(self, promql: str, start: float, end: float, step_s: float) -> list[tuple[dict[str, str],
                                                                                            list[tuple[float, float]]]]:
        """(labels, [(time, value), …]) per series."""
        return [(r["metric"], [(float(t), float(v)) for t, v in r["values"]])
                for r in self.query_range_raw(promql, start, end, step_s)]
