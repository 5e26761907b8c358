"""The `surge` command line."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="surge: pod autoscaling and node provisioning.")


@app.callback()
def main() -> None:
    """surge: event-driven pod autoscaling and cost-aware node provisioning for Kubernetes."""


if __name__ == "__main__":
    app()
