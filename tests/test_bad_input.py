"""Bad input never crashes a command: the hardened reader, and every CLI path over a corpus of
hostile files (one clear line, exit status 2 — validate: its report and status 1 — no traceback,
bounded time and memory), a server answering garbage, and a malformed --env."""

from __future__ import annotations

import os
import resource
import socketserver
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoscaler.cli import app
from autoscaler.manifests.reader import Limits, ManifestError, check_object, load_bytes, read_file

ROOT = Path(__file__).resolve().parent.parent


def alias_bomb(levels: int = 9, width: int = 9) -> bytes:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return ("\n".join(lines) + "\n").encode()


SO_HEAD = "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: w, namespace: t}\n"
# name → (bytes, a fragment the reader's error must contain)
CORPUS: dict[str, tuple[bytes, str]] = {
    "binary": (bytes(range(256)) * 8, "is binary"),
    "latin1": ((SO_HEAD + "spec: {scaleTargetRef: {name: café}}\n").encode("latin-1"),
               "is not UTF-8 (byte 0xe9 on line 4"),
    "utf16": ((SO_HEAD + "spec: {}\n").encode("utf-16"), "is UTF-16"),
    "utf16-no-bom": ((SO_HEAD + "spec: {}\n").encode("utf-16-le"), "looks like UTF-16"),
    "deep-list": (b"[" * 100_000 + b"]" * 100_000, "not valid YAML"),
    "deep-block": (b"- " * 3000 + b"x\n", "nests deeper than 64 levels"),
    "deep-mapping": (("spec:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(200))).encode(),
                     "spec.k0.k1.k2"),
    "alias-bomb": (alias_bomb(), "aliases expanded"),
    "many-documents": (b"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n" * 48_000,
                       "more than 2000 documents"),
    "bad-yaml": (b"a: [1, 2\nb: c\n", "line 2, column 2: not valid YAML"),
    "not-a-mapping": (b"- just\n- a list\n", ""),
    "tag": (b"!!python/object/apply:os.system [echo hi]\n", "not valid YAML"),
    "huge": (b"a: " + b"x" * (9 * 1024 * 1024) + b"\n", "over the limit"),
}
INVALID_SO = (SO_HEAD + "spec:\n  scaleTargetRef: {name: w}\n"
              "  maxReplicaCount: 10000000000000000000000000000000000000000\n"
              "  triggers: [{type: redis, metadata: {address: 'r:6379', listName: q, listLength: '5'}}]\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("corpus")
    files = {}
    for name, (data, _) in CORPUS.items():
        files[name] = d / f"{name}.yaml"
        files[name].write_bytes(data)
    files["invalid-scaledobject"] = d / "invalid-scaledobject.yaml"
    files["invalid-scaledobject"].write_text(INVALID_SO)
    files["missing"] = d / "no-such-file.yaml"
    return files


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_reader_refuses_hostile_bytes_quickly_and_says_where(name: str) -> None:
    data, fragment = CORPUS[name]
    tracemalloc.start()
    try:
        with pytest.raises(ManifestError) as info:
            docs = load_bytes(data, f"{name}.yaml", Limits())
            if name == "not-a-mapping":  # readable YAML: the mapping check is the caller's (mappings())
                assert docs == [["just", "a list"]]
                raise ManifestError(f"{name}.yaml", "ok")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert message.startswith(f"{name}.yaml: ") and fragment in message, message
    assert "\n" not in message
    assert peak < 64 * 1024 * 1024, f"{name}: {peak / 1e6:.0f} MB"


def test_reader_limits_are_configurable_and_name_the_variable() -> None:
    limits = Limits.from_env({"SURGE_MANIFEST_MAX_DEPTH": "3", "SURGE_MANIFEST_MAX_DOCUMENTS": "1"})
    assert (limits.max_depth, limits.max_documents, limits.max_bytes) == (3, 1, Limits().max_bytes)
    with pytest.raises(ManifestError, match=r"f\.yaml: document 0: a\.b\.c: nests deeper than 3 levels"):
        load_bytes(b"a: {b: {c: [1]}}\n", "f.yaml", limits)
    with pytest.raises(ManifestError, match="SURGE_MANIFEST_MAX_DOCUMENTS"):
        load_bytes(b"a: 1\n---\nb: 2\n", "f.yaml", limits)
    with pytest.raises(ManifestError, match="SURGE_MANIFEST_MAX_DEPTH: expected a positive integer"):
        Limits.from_env({"SURGE_MANIFEST_MAX_DEPTH": "lots"})
    # a UTF-8 byte-order mark is fine, and anchors within the limits still work
    assert load_bytes(b"\xef\xbb\xbfa: &x [1, 2]\nb: *x\n", "f.yaml") == [{"a": [1, 2], "b": [1, 2]}]


def test_objects_from_the_api_server_get_the_same_limits() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(100):
        node["a"] = {}
        node = node["a"]  # type: ignore[assignment]
    with pytest.raises(ManifestError, match=r"ScaledObject t/w: spec(\.a){63}: nests deeper than 64"):
        check_object({"spec": deep}, "ScaledObject t/w")
    check_object({"spec": {"triggers": [{"type": "redis"}]}}, "ScaledObject t/w")


# every command that reads a manifest, with the slot the bad file goes in
COMMANDS: dict[str, list[str]] = {
    "validate": ["validate", "{f}"],
    "read": ["read", "{f}"],
    "plan": ["plan", "{f}"],
    "plan --nodepool": ["plan", "{ok}", "--nodepool", "{f}"],
    "simulate --scaledobject": ["simulate", "--days", "0.01", "--scaledobject", "{f}"],
    "simulate --nodepool": ["simulate", "--days", "0.01", "--nodepool", "{f}"],
    "simulate --deployment": ["simulate", "--days", "0.01", "--deployment", "{f}"],
    "forecast": ["forecast", "{f}"],
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_over_the_bad_input_corpus(command: str, corpus: dict[str, Path], tmp_path: Path) -> None:
    ok = tmp_path / "pod.yaml"
    ok.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n")
    runner = CliRunner()
    for name, path in corpus.items():
        if command == "forecast" and name in ("invalid-scaledobject",):
            continue
        args = [a.format(f=path, ok=ok) for a in COMMANDS[command]]
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        where = f"surge {command} on {name}: exit {result.exit_code}\n{result.output}"
        assert result.exception is None or isinstance(result.exception, SystemExit), where + repr(result.exception)
        assert "Traceback" not in result.output, where
        if command == "validate":
            assert result.exit_code == 1 and "INVALID" in result.stdout, where
        elif name == "invalid-scaledobject" and command.startswith("plan"):
            assert result.exit_code == 0, where  # plan reads Pods and NodePools; other kinds pass by
        else:
            assert result.exit_code == 2, where
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and "error" in lines[0], where
            if name != "missing" and command != "forecast":
                assert path.name in lines[0], where


def test_read_names_file_document_and_field_of_an_invalid_scaledobject(corpus: dict[str, Path]) -> None:
    result = CliRunner().invoke(app, ["read", str(corpus["invalid-scaledobject"])])
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"surge read: error: {corpus['invalid-scaledobject']}: document 0: "
                                     "spec.maxReplicaCount: ScaledObject w: Input should be less than or equal to "
                                     "2147483647 (got 10000000000000000000000000000000000000000)")


def test_env_without_equals_is_one_line_and_does_not_echo_the_value(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["read", str(tmp_path), "--env", "hunter2-secret"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "surge read: error: --env: expected KEY=VALUE, item 1 has no '=' or no key"
    assert "hunter2" not in result.output


@pytest.fixture
def garbage_server() -> Iterator[int]:
    """A real TCP server that answers any request with bytes no protocol expects."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(65536)
            self.request.sendall(b"\x00\xff\xfe garbage \r\n\r\n\x00")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.timeout(120)
def test_read_against_a_server_answering_garbage(garbage_server: int, tmp_path: Path) -> None:
    path = tmp_path / "so.yaml"
    path.write_text(SO_HEAD + f"""spec:
  scaleTargetRef: {{name: w}}
  triggers:
    - {{type: prometheus, metadata: {{serverAddress: "http://127.0.0.1:{garbage_server}", query: up, threshold: "1"}}}}
    - {{type: redis, metadata: {{address: "127.0.0.1:{garbage_server}", listName: q, listLength: "5"}}}}
""")
    result = CliRunner().invoke(app, ["read", str(path), "--format", "json"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    import json

    reports = json.loads(result.stdout)
    assert [r["trigger"] for r in reports] == ["prometheus#0", "redis#1"]
    assert all(r["error"] and r["value"] is None for r in reports)


@pytest.mark.timeout(120)
def test_the_installed_command_stays_within_memory_on_the_worst_files(corpus: dict[str, Path]) -> None:
    """The real process (no test runner in between): 1 GiB of address space is plenty."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    for name in ("alias-bomb", "many-documents", "deep-list"):
        proc = subprocess.run([sys.executable, "-m", "autoscaler.cli", "read", str(corpus[name])], cwd=ROOT,
                              capture_output=True, text=True, timeout=100, preexec_fn=limit, env=env)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_mappings_and_missing_files(corpus: dict[str, Path]) -> None:
    from autoscaler.manifests.reader import mappings

    with pytest.raises(ManifestError, match=r"not-a-mapping\.yaml: document 0: is a list, expected a mapping"):
        list(mappings(corpus["not-a-mapping"]))
    with pytest.raises(ManifestError, match=r"no-such-file\.yaml: cannot read: No such file"):
        read_file(corpus["missing"])


def test_a_metrics_api_answering_an_alias_bomb_is_refused_quickly() -> None:
    from scalers.metrics_api import value_from_response

    with pytest.raises(ValueError, match="aliases are not accepted"):
        value_from_response(alias_bomb(), "a8", "yaml")
    assert value_from_response(b"queue: {depth: 7}\n", "queue.depth", "yaml") == 7


@pytest.mark.timeout(120)
def test_cost_against_a_server_answering_garbage(garbage_server: int, corpus: dict[str, Path]) -> None:
    """`surge cost` reads Prometheus: garbage there, or a hostile manifest for --what-if, is one line."""
    runner = CliRunner()
    result = runner.invoke(app, ["cost", "--prometheus", f"http://127.0.0.1:{garbage_server}", "--format", "json"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "unreachable" in lines[0] and "Traceback" not in result.output, result.output
