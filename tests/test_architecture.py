"""The import rule, kept true by parsing imports: kernels <- server; export never imported by
server; no torch in server or kernels; kernels import only numpy, numba and the stdlib."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(ROOT))] = names
    return out


def test_server_never_imports_export_bench_or_torch():
    for path, names in _imports("server").items():
        bad = names & {"export", "bench", "loadtests", "torch", "transformers", "optimum", "onnx"}
        assert not bad, f"{path} imports {bad}"


def test_kernels_import_only_numpy_numba_and_stdlib():
    # llvmlite is numba's own code generator (intrinsics for fp16 widening)
    allowed = {"numpy", "numba", "llvmlite", "kernels", "__future__"} | set(sys.stdlib_module_names)
    for path, names in _imports("kernels").items():
        assert names <= allowed, f"{path} imports {names - allowed}"


def test_export_reads_only_the_contract_of_server():
    for path, names in _imports("export").items():
        if "server" not in names:
            continue
        text = (ROOT / path).read_text()
        for node in ast.walk(ast.parse(text)):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("server")
            ):
                assert node.module.startswith("server.contract"), f"{path}: {node.module}"


def test_loadtests_talk_http_only():
    for path, names in _imports("loadtests").items():
        assert not names & {"server", "kernels", "export"}, f"{path} imports {names}"


def _server_imports() -> dict[str, set[str]]:
    """server file -> the server sub-packages/modules it imports (`server.engine`, ...)."""
    out: dict[str, set[str]] = {}
    for path in (ROOT / "server").rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("server.")
            ):
                names.add(".".join(node.module.split(".")[:2]))
            elif isinstance(node, ast.Import):
                names.update(
                    ".".join(a.name.split(".")[:2])
                    for a in node.names
                    if a.name.startswith("server.")
                )
        out[str(path.relative_to(ROOT / "server"))] = names
    return out


# what each layer of the server may import (besides itself); the map is docs/architecture.md
LEAVES = {
    "server.contract",
    "server.schemas",
    "server.errors",
    "server.settings",
    "server.budget",
    "server.request_ids",
}
ALLOWED = {
    "contract": set(),
    "schemas": set(),
    "errors.py": set(),
    "settings.py": set(),
    "metrics.py": set(),
    "request_ids.py": set(),
    "budget.py": {"server.errors"},
    "runtime": {"server.contract", "server.errors"},
    "batching": {"server.errors", "server.contract"},
    "engine": {"server.batching", "server.runtime", "server.metrics"} | LEAVES,
    "pipelines": {"server.batching"} | LEAVES,
    "http": {"server.engine", "server.pipelines", "server.metrics", "server.control"} | LEAVES,
    # V2 gRPC: a second transport over the REST layer's shared pieces (admission, the timeout
    # rule, the codec's limits, metadata bodies), never around them to the engine's internals
    "grpc": {"server.http", "server.metrics", "server.control"} | LEAVES,
}


def test_server_layers_import_downwards_only():
    for path, names in _server_imports().items():
        top = path.split("/")[0]
        if top not in ALLOWED:
            continue  # app.py, main.py, cli.py, logs.py: the composition root
        own = {f"server.{top.removesuffix('.py')}"}
        bad = names - ALLOWED[top] - own
        assert not bad, f"server/{path} imports {sorted(bad)}"
