"""The `surge` command line."""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from autoscaler.errors import UserError, describe


class SurgeGroup(TyperGroup):
    """Every command's errors end here: bad input is one line on stderr and exit status 2, never a
    traceback (SURGE_DEBUG=1 lets the exception through for debugging)."""

    def invoke(self, ctx: Any) -> Any:  # typer.Context; its vendored click base class is private
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # usage errors: typer reports them itself
            raise
        except Exception as exc:
            if os.environ.get("SURGE_DEBUG"):
                raise
            message, status = describe(exc)
            command = ctx.invoked_subcommand or ""
            typer.echo(f"surge {command}: error: {message}".replace("  ", " "), err=True)
            raise typer.Exit(status) from None


app = typer.Typer(cls=SurgeGroup, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="surge: pod autoscaling and node provisioning.")


def parse_env(items: list[str]) -> dict[str, str]:
    """--env KEY=VALUE pairs; a pair without '=' or with an empty key is a user error."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            # the item may be a secret written wrongly: say which one, not what it holds
            raise UserError(f"--env: expected KEY=VALUE, item {len(pairs) + 1} has no '=' or no key")
        pairs[key.strip()] = value
    return pairs


class Format(StrEnum):
    text = "text"
    json = "json"


@app.callback()
def main() -> None:
    """surge: event-driven pod autoscaling and cost-aware node provisioning for Kubernetes."""


@app.command()
def validate(
    paths: list[Path] = typer.Argument(..., help="manifest files or directories"),  # noqa: B008
    format: Format = typer.Option(Format.text, "--format", help="text or json"),  # noqa: B008
) -> None:
    """Check KEDA / HTTP add-on manifests; exit status 1 when any object is invalid."""
    from autoscaler.validate import validate_paths

    results = validate_paths(paths)
    if format is Format.json:
        typer.echo(json.dumps([r.to_json() for r in results], indent=2))
    else:
        for r in results:
            label = f"{r.kind or '?'}/{r.name or '?'}"
            typer.echo(f"{'OK     ' if r.ok else 'INVALID'} {r.file}: {label}")
            for e in r.errors:
                typer.echo(f"    error   {e.field}: {e.message}")
            for w in r.warnings:
                typer.echo(f"    warning {w}")
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


@app.command()
def read(
    paths: list[Path] = typer.Argument(..., help="files with ScaledObjects (and their auth/Secrets)"),  # noqa: B008
    env: list[str] = typer.Option([], "--env", help="KEY=VALUE for <key>FromEnv lookups (the target's env)"),  # noqa: B008
    format: Format = typer.Option(Format.text, "--format", help="text or json"),  # noqa: B008
    current: int | None = typer.Option(None, "--current", help="the target's replicas now: also decide"),
) -> None:
    """Read every trigger once against its real server; exit status 1 when any read fails.
    With --current, also print what the replica engine would set the target to."""
    import asyncio
    from dataclasses import asdict

    from autoscaler.read import read_and_decide

    pairs = parse_env(env)
    reports, verdicts = asyncio.run(read_and_decide(paths, pairs, current))
    if format is Format.json:
        payload: object = [asdict(r) for r in reports]
        if current is not None:
            payload = {"triggers": payload, "decisions": [asdict(v) for v in verdicts]}
        typer.echo(json.dumps(payload, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="trigger readings")
        for col in ("ScaledObject", "trigger", "value", "target", "active", "replicas asked", "error"):
            table.add_column(col)
        for r in reports:
            table.add_row(r.scaled_object, r.trigger, "" if r.value is None else f"{r.value:g}",
                          "" if r.target is None else f"{r.target:g}", "yes" if r.active else "no",
                          "" if r.replicas_for_metric is None else str(r.replicas_for_metric), r.error or "")
        console = Console()
        console.print(table)
        for v in verdicts:
            console.print(f"[bold]{v.scaled_object}[/bold]: {v.current} → {v.desired} replicas ({v.reason})")
    raise typer.Exit(1 if any(r.error for r in reports) else 0)


@app.command()
def operator(
    server: str | None = typer.Option(None, "--server", help="API server URL (default: in-cluster, then kubeconfig)"),
    lease_namespace: str = typer.Option("surge", "--lease-namespace", help="namespace of the leader Lease"),
    port: int = typer.Option(8080, "--port", help="port for /metrics, /healthz, /readyz", min=1, max=65535),
    bind_address: str = typer.Option("0.0.0.0", "--bind-address", envvar="SURGE_BIND_ADDRESS",
                                     help="address /metrics, /healthz and /readyz listen on"),
    metrics_auth: str = typer.Option("none", "--metrics-auth", envvar="SURGE_METRICS_AUTH",
                                     help="none, or token-review: /metrics needs a bearer token the API server "
                                          "authenticates and authorizes for GET /metrics (kube-rbac-proxy style)"),
    secret_namespaces: str = typer.Option("", "--secret-namespaces", envvar="SURGE_SECRET_NAMESPACES",
                                          help="comma-separated namespaces whose Secrets surge may read "
                                               "(default: all; the chart's rbac.secretNamespaces)"),
    leader_elect: bool = typer.Option(True, "--leader-elect/--no-leader-elect"),
    history_redis: str | None = typer.Option(None, "--history-redis",
                                             help="redis:// URL for metric history (env SURGE_HISTORY_REDIS_URL)"),
    controllers: str = typer.Option("autoscaler", "--controllers",
                                    help="comma-separated: autoscaler, provisioner (AWS: env AWS_REGION, "
                                         "SURGE_CLUSTER_NAME, SURGE_INTERRUPTION_QUEUE)"),
    identity: str | None = typer.Option(None, "--identity", help="holder identity in the Lease (default host-pid)"),
    lease_duration: float = typer.Option(15.0, "--leader-elect-lease-duration", help="seconds a standby waits "
                                         "for a silent leader"),
    renew_deadline: float = typer.Option(10.0, "--leader-elect-renew-deadline", help="seconds the leader keeps "
                                         "acting without a successful renewal (< lease duration)"),
    retry_period: float = typer.Option(2.0, "--leader-elect-retry-period", help="seconds between attempts"),
) -> None:
    """Run the ScaledObject controller and/or the node provisioner (one active replica via a Lease)."""
    import asyncio
    import logging

    from autoscaler import redact
    from autoscaler.operator.main import run_operator

    level = os.environ.get("SURGE_LOG_LEVEL", "info").upper()
    redact.install(getattr(logging, level, logging.INFO))  # every handler masks Secret values
    wanted = {c.strip() for c in controllers.split(",") if c.strip()}
    unknown = wanted - {"autoscaler", "provisioner"}
    if unknown:
        raise typer.BadParameter(f"unknown controllers {sorted(unknown)}; expected autoscaler, provisioner",
                                 param_hint="--controllers")
    if metrics_auth not in ("none", "token-review"):
        raise UserError(f"--metrics-auth: expected none or token-review, got {metrics_auth!r}")
    namespaces = tuple(sorted({n.strip() for n in secret_namespaces.split(",") if n.strip()}))
    from autoscaler.operator.leader import LeaseTiming

    try:
        timing = LeaseTiming(lease_duration, renew_deadline, retry_period)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--leader-elect-*") from None
    asyncio.run(run_operator(server, lease_namespace, port, leader_elect, identity=identity,
                             history_redis=history_redis, autoscaler="autoscaler" in wanted,
                             provisioner="provisioner" in wanted, timing=timing, bind_address=bind_address,
                             metrics_auth=metrics_auth, secret_namespaces=namespaces))


from autoscaler.interceptor.cli import interceptor  # noqa: E402

app.command("interceptor")(interceptor)

from autoscaler.plan_cli import plan  # noqa: E402

app.command("plan")(plan)

from autoscaler.simulate_cli import simulate  # noqa: E402

app.command("simulate")(simulate)

from autoscaler.forecast_cli import forecast  # noqa: E402

app.command("forecast")(forecast)

from autoscaler.cost_cli import cost  # noqa: E402

app.command("cost")(cost)


if __name__ == "__main__":
    app()
