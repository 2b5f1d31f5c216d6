"""`kernels` imports only numpy, numba (with its llvmlite) and the standard library."""

import ast
import sys
from pathlib import Path

import kernels

ALLOWED = {"numpy", "numba", "llvmlite", "__future__"}


def test_kernels_import_only_numpy_numba_and_stdlib() -> None:
    root = Path(kernels.__file__).parent
    bad = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if top not in ALLOWED and top not in sys.stdlib_module_names:
                    bad.append(f"{path.name}: {name}")
    assert not bad, bad
