"""Option values a new user mistypes are one-line errors with exit status 2, never a traceback or a
silent default (found trying `surge simulate`, `forecast` and `cost` as an outsider)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoscaler.cli import app

runner = CliRunner()
TRACE = "timestamp_seconds,value\n" + "".join(f"{i * 60},{10 + i % 7}\n" for i in range(120))


@pytest.mark.parametrize(("option", "message"), [
    (["--pod-rate", "0"], "--pod-rate: expected a positive rate, got 0.0"),  # was ZeroDivisionError
    (["--tick", "0"], "--tick: expected a positive number of seconds, got 0.0"),  # was ZeroDivisionError
    (["--spot-discount", "1.5"], "--spot-discount: expected a fraction"),  # was a negative spot price
    (["--scale", "-1"], "--scale: expected a positive multiplier, got -1.0"),
    (["--days", "0"], "--days: expected a positive number of days, got 0.0"),
    (["--slo", "nan"], "--slo: expected a positive number of seconds, got nan"),
    (["--format", "xml"], "--format: expected text or json, got 'xml'"),
])
def test_simulate_option_out_of_range(tmp_path: Path, option: list[str], message: str) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(TRACE)
    result = runner.invoke(app, ["simulate", "--trace", str(trace), *option])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("option", "message"), [
    (["--days", "0"], "--days: expected a positive number of days, got 0.0"),
    (["--format", "xml"], "--format: expected text or json, got 'xml'"),
])
def test_forecast_option_out_of_range(tmp_path: Path, option: list[str], message: str) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(TRACE)
    result = runner.invoke(app, ["forecast", str(trace), *option])
    assert result.exit_code == 2 and message in result.output, result.output


def test_cost_prometheus_must_be_a_url() -> None:
    result = runner.invoke(app, ["cost", "--prometheus", "localhost:9090", "--window", "1h"])
    assert result.exit_code == 2
    assert "--prometheus: expected an http:// or https:// URL; got 'localhost:9090'" in result.output
