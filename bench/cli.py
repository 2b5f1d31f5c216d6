"""`shopserve bench server|kernels|pipelines|faults|workers|flame`: reached through the `shopserve.commands` entry point."""

from __future__ import annotations

import argparse
import importlib

__all__ = ["main"]

_BENCHES = {
    "server": "bench.server",
    "kernels": "bench.kernels",
    "pipelines": "bench.pipelines",
    "faults": "bench.faults",
    "workers": "bench.workers",
    "flame": "bench.flame",
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="shopserve bench", description=__doc__)
    parser.add_argument("which", choices=sorted(_BENCHES))
    args, rest = parser.parse_known_args(argv)
    module = importlib.import_module(_BENCHES[args.which])
    return int(module.main(rest) or 0)
