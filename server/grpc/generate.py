"""Regenerate the protobuf modules from `shopserve_inference.proto` (`make proto`):
`python -m server.grpc.generate [OUT_DIR]`. Needs grpcio-tools (a dev dependency); the server only
imports what it wrote, and tests/server/grpc/test_proto.py checks that it matches the committed
modules. Only messages are generated: the handlers are registered by hand (server/grpc/service.py),
so the served code needs no `*_pb2_grpc.py` and no minimum grpcio that one would pin."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["GENERATED", "PROTO", "generate"]

HERE = Path(__file__).resolve().parent
PROTO = HERE / "shopserve_inference.proto"
GENERATED = ("shopserve_inference_pb2.py", "shopserve_inference_pb2.pyi")


def generate(out_dir: Path = HERE) -> list[Path]:
    """Run protoc (from grpcio-tools) on the .proto; return the files written."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{HERE}",
        f"-I{Path(protoc.__file__).parent / '_proto'}",  # the well-known types, if ever imported
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        str(PROTO),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    return [out_dir / name for name in GENERATED]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = Path(argv[0]) if argv else HERE
    for path in generate(out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
