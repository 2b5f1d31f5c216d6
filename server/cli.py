"""The `shopserve` command. `serve` lives here; `export`, `bench` and `loadtest` are found through
the `shopserve.commands` entry points, so the serving install never imports torch or `export`."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points
from pathlib import Path

__all__ = ["main"]


def _serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="shopserve serve", description="Serve a model repository."
    )
    parser.add_argument("--model-repository", type=Path, default=None)
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument(
        "--grpc-port", type=int, default=None, help="V2 gRPC port (default 8001; 0: no gRPC)"
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=None,
        help="worker processes on the port: a number, or auto (one per core); default 1",
    )
    parser.add_argument("--config", type=Path, default=None, help="settings TOML file")
    parser.add_argument("--log-level", default=None)
    args = parser.parse_args(argv)
    from server.main import run

    return run(
        config_file=args.config,
        model_repository=args.model_repository,
        host=args.host,
        port=args.port,
        grpc_port=args.grpc_port,
        log_level=args.log_level,
        workers=args.workers,
    )


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None


def _plugins() -> dict:
    return {ep.name: ep for ep in entry_points(group="shopserve.commands")}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    plugins = _plugins()
    builtins = {"serve": _serve}
    names = sorted([*builtins, *plugins])
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: shopserve {" + ",".join(names) + "} ...")
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd in builtins:
        return builtins[cmd](rest)
    if cmd in plugins:
        try:
            func = plugins[cmd].load()
        except ImportError as exc:
            extra = {"export": "export", "bench": "bench", "loadtest": "loadtest"}.get(cmd, cmd)
            print(
                f"shopserve {cmd}: missing dependency ({exc}); install with "
                f"pip install -e '.[{extra}]'",
                file=sys.stderr,
            )
            return 2
        return int(func(rest) or 0)
    print(f"shopserve: unknown command {cmd!r}; choose from {', '.join(names)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
