"""The engine path in-process against raw ONNX Runtime on the bench MLP (64-256-128-1), rows/s:

    python -m bench.gpu_engine [--device cuda|cpu] [--batch 4096] [--seconds 5] [--json FILE]

- raw, resident: one session, IO binding with the input already on the device and the output
  left there (`OrtValue`s bound once, `run_with_iobinding` in a loop): the ceiling.
- raw, numpy: IO binding from a numpy array to a numpy array each call (the copies included),
  which is what any server must do with a request's bytes.
- engine: `ModelRepository` + `LoadedModel.infer` (validation, the batcher's queue, collation,
  its executor thread, the session with IO binding, the split of outputs; one session, as raw,
  unless `--instances`), no HTTP; requests of
  `--batch` rows (one request per batch), and requests of 64 rows from `batch / 64` concurrent
  callers that the batcher joins into batches of up to `--batch` rows.
Target (issue 12): the engine >= 50% of raw resident IO binding at batch 4096 on the GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from server.contract.model_config import (
    DynamicBatching,
    InstanceGroup,
    ModelConfig,
    QueuePolicy,
    TensorConfig,
    encode_config,
)

__all__ = ["main"]

TARGET = 0.5


def _write(root: Path, batch: int, kind: str, instances: int) -> Path:
    from export.demo import mlp_weights, write_mlp

    path = root / "mlp" / "1" / "model.onnx"
    write_mlp(path, mlp_weights())
    config = ModelConfig(
        name="mlp",
        max_batch_size=batch,
        input=[TensorConfig(name="features", data_type="TYPE_FP32", dims=[64])],
        output=[TensorConfig(name="score", data_type="TYPE_FP32", dims=[1])],
        dynamic_batching=DynamicBatching(
            max_queue_delay_microseconds=200,
            preferred_batch_size=[batch],
            default_queue_policy=QueuePolicy(max_queue_size=1 << 16),
        ),
        instance_group=[InstanceGroup(count=instances, kind=kind)],  # type: ignore[arg-type]
    )
    (root / "mlp" / "config.toml").write_bytes(encode_config(config))
    return path


def _loop(fn, seconds: float) -> tuple[int, float]:
    for _ in range(20):
        fn()
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        for _ in range(10):
            fn()
        n += 10
    return n, elapsed


def raw(path: Path, device: str, batch: int, seconds: float) -> dict[str, float]:
    """Rows/s of one session with IO binding: resident on the device, and from/to numpy."""
    import onnxruntime as ort

    providers = (
        [("CUDAExecutionProvider", {"device_id": 0})]
        if device == "cuda"
        else ["CPUExecutionProvider"]
    )
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=providers)
    got = sess.get_providers()[0]
    if device == "cuda" and got != "CUDAExecutionProvider":
        raise SystemExit(f"bench gpu_engine: the CUDA provider did not load ({got})")
    x = np.random.default_rng(0).standard_normal((batch, 64)).astype(np.float32)
    resident = sess.io_binding()
    resident.bind_ortvalue_input("features", ort.OrtValue.ortvalue_from_numpy(x, device, 0))
    resident.bind_output("score", device, 0)
    n, s = _loop(lambda: sess.run_with_iobinding(resident), seconds)
    out = {"raw_resident_rows_s": n * batch / s, "raw_resident_ms": 1e3 * s / n}

    def numpy_round_trip() -> None:
        b = sess.io_binding()
        b.bind_cpu_input("features", x)
        b.bind_output("score", device, 0)
        sess.run_with_iobinding(b)
        b.copy_outputs_to_cpu()

    n, s = _loop(numpy_round_trip, seconds)
    out |= {"raw_numpy_rows_s": n * batch / s, "raw_numpy_ms": 1e3 * s / n}
    return out


async def _engine(root: Path, setting: str, rows: int, callers: int, seconds: float) -> dict:
    from server.engine.repository import ModelRepository

    repository = ModelRepository(root, device_setting=setting)
    await repository.load("mlp")
    model = repository.get("mlp")
    x = np.random.default_rng(1).standard_normal((rows, 64)).astype(np.float32)
    done = 0

    async def caller(t_end: float) -> None:
        nonlocal done
        while time.perf_counter() < t_end:
            await model.infer({"features": x})
            done += rows

    await asyncio.gather(*(caller(time.perf_counter() + 1.0) for _ in range(callers)))  # warm
    done, execs0, count0 = 0, model.stats.execution_count, model.stats.inference_count
    t0 = time.perf_counter()
    await asyncio.gather(*(caller(t0 + seconds) for _ in range(callers)))
    elapsed = time.perf_counter() - t0
    execs = model.stats.execution_count - execs0
    batch_rows = (model.stats.inference_count - count0) / max(1, execs)
    device = model.device_parameters()["device"]
    await repository.close()
    return {
        "request_rows": rows,
        "callers": callers,
        "rows_s": done / elapsed,
        "requests_s": done / rows / elapsed,
        "mean_batch_rows": round(batch_rows, 1),
        "device": device,
    }


def _run_engine(root: Path, setting: str, rows: int, callers: int, seconds: float) -> dict:
    try:
        import uvloop  # the server's loop

        return uvloop.run(_engine(root, setting, rows, callers, seconds))
    except ImportError:
        return asyncio.run(_engine(root, setting, rows, callers, seconds))


def format_table(doc: dict) -> str:
    raw_rows = doc["raw"]["raw_resident_rows_s"]
    lines = [
        f"MLP 64-256-128-1 on {doc['device']}, batch {doc['batch']} (rows/s; ratio to raw resident)",
        "| path | request rows x callers | mean batch | rows/s | requests/s | x raw resident |",
        "|---|---|---|---|---|---|",
        f"| raw IO binding, resident | {doc['batch']} x 1 | {doc['batch']} | {raw_rows:,.0f} | - | 1.00 |",
        f"| raw IO binding, numpy in/out | {doc['batch']} x 1 | {doc['batch']} | "
        f"{doc['raw']['raw_numpy_rows_s']:,.0f} | - | {doc['raw']['raw_numpy_rows_s'] / raw_rows:.2f} |",
    ]
    for e in doc["engine"]:
        lines.append(
            f"| engine ({e['device']}) | {e['request_rows']} x {e['callers']} | "
            f"{e['mean_batch_rows']} | {e['rows_s']:,.0f} | {e['requests_s']:,.0f} | "
            f"{e['rows_s'] / raw_rows:.2f} |"
        )
    verdict = "met" if doc["target_met"] else "NOT met"
    lines.append(
        f"target: engine >= {TARGET:.0%} of raw resident: {verdict} ({doc['best_ratio']:.2f})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.gpu_engine", description=__doc__.split("\n")[0]
    )
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--instances", type=int, default=1, help="the engine's sessions (raw runs one)")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    kind, setting = ("KIND_GPU", "auto") if a.device == "cuda" else ("KIND_CPU", "cpu")
    with tempfile.TemporaryDirectory(prefix="shopserve-gpu-engine-") as tmp:
        path = _write(Path(tmp), a.batch, kind, a.instances)
        doc: dict = {"device": a.device, "batch": a.batch, "seconds": a.seconds,
                     "engine_instances": a.instances}  # fmt: skip
        doc["raw"] = raw(path, a.device, a.batch, a.seconds)
        small = min(64, a.batch)
        doc["engine"] = [
            _run_engine(Path(tmp), setting, a.batch, 4, a.seconds),
            _run_engine(Path(tmp), setting, small, max(1, a.batch // small), a.seconds),
        ]
    doc["best_ratio"] = max(e["rows_s"] for e in doc["engine"]) / doc["raw"]["raw_resident_rows_s"]
    doc["target_met"] = doc["best_ratio"] >= TARGET
    print(format_table(doc))
    if a.json:
        a.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
