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
                assert node.module.startswith("server.contract"), (
                    f"{path}: {node.module}"
                )


def test_loadtests_talk_http_only():
    for path, names in _imports("loadtests").items():
        assert not names & {"server", "kernels", "export"}, f"{path} imports {names}"
