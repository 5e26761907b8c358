"""`surge interceptor`: options over the add-on's environment variables."""

from __future__ import annotations

import os

import typer


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def interceptor(
    server: str | None = typer.Option(None, "--server", help="API server URL (default: in-cluster, then kubeconfig)"),
    proxy_port: int = typer.Option(_env_int("KEDA_HTTP_PROXY_PORT", 8080), "--proxy-port"),
    admin_port: int = typer.Option(_env_int("KEDA_HTTP_ADMIN_PORT", 9090), "--admin-port",
                                   help="counts for the operator, /livez, /readyz"),
    tls_port: int | None = typer.Option(None, "--tls-port", help="also serve TLS here (KEDA_HTTP_PROXY_TLS_PORT)"),
    tls_cert: str = typer.Option(os.environ.get("KEDA_HTTP_PROXY_TLS_CERT_PATH", "/certs/tls.crt"), "--tls-cert"),
    tls_key: str = typer.Option(os.environ.get("KEDA_HTTP_PROXY_TLS_KEY_PATH", "/certs/tls.key"), "--tls-key"),
    namespace: str = typer.Option(os.environ.get("KEDA_HTTP_WATCH_NAMESPACE", ""), "--namespace",
                                  help="watch one namespace (default: all)"),
    shutdown_delay: float = typer.Option(5.0, "--shutdown-delay", help="seconds between SIGTERM and closing"),
    metrics_port: int | None = typer.Option(None, "--metrics-port", help="Prometheus /metrics (the add-on uses 2223)"),
    readiness_timeout: float | None = typer.Option(None, "--readiness-timeout",
                                                   help="seconds to hold at zero (0: no limit)"),
    header_read_timeout: float | None = typer.Option(None, "--header-read-timeout"),
) -> None:
    """Run the HTTP interceptor: route like the KEDA HTTP add-on, hold requests at zero, report counts."""
    import logging

    from autoscaler.interceptor.main import Listen, run_interceptor, settings_from_env
    from autoscaler.operator.main import load_configuration

    logging.basicConfig(level=getattr(logging, os.environ.get("SURGE_LOG_LEVEL", "info").upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = settings_from_env(readiness_s=readiness_timeout, header_read_s=header_read_timeout)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if tls_port is None and os.environ.get("KEDA_HTTP_PROXY_TLS_ENABLED", "").lower() == "true":
        tls_port = _env_int("KEDA_HTTP_PROXY_TLS_PORT", 8443)
    listen = Listen(proxy_port, admin_port, tls_port=tls_port, tls_cert=tls_cert, tls_key=tls_key,
                    shutdown_delay_s=shutdown_delay, metrics_port=metrics_port)

    async def main() -> None:
        await run_interceptor(await load_configuration(server), settings, listen, namespace)

    import ssl

    import uvloop

    try:
        uvloop.run(main())
    except (OSError, ssl.SSLError) as exc:  # a port in use, an unreadable certificate: said, not a traceback
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
