"""`shopserve export ...`: reached through the `shopserve.commands` entry point."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["main"]


def _demo(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="shopserve export demo", description="Build the small demo repository (onnx.helper models, no training).")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from export.demo import build_demo_repository

    build_demo_repository(args.out)
    print(f"demo repository written to {args.out}")
    return 0


_COMMANDS = {"demo": _demo}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in _COMMANDS:
        print("usage: shopserve export {" + ",".join(sorted(_COMMANDS)) + "} ...")
        return 2
    return _COMMANDS[argv[0]](argv[1:])
