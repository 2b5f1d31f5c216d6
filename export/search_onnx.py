"""The query encoders in ONNX Runtime: the served `search_encoder` spec, the student's export
with its numeric check, its int8 variant, and the latency of a short query on one thread."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export import onnx_tools
from export.specs import OnnxSpec, TensorSpec
from export.text_data import INPUT_IDS  # MiniLM's token ids: every text model's input

__all__ = [
    "EMBEDDING",
    "INPUT_IDS",
    "LATENCY_TOKENS",
    "SEARCH_ENCODER",
    "Encoded",
    "encoder_latency",
    "export_student",
    "run_encoder",
]

# the token table is most of the student (30522 x 384): quantizing its Gather too makes the
# int8 file 4x smaller (47 -> 12 MiB) for a cosine to fp32 of 0.996 (0.997 without)
INT8_OPS = ("MatMul", "Gemm", "Gather")
LATENCY_TOKENS = 8  # a typed query: [CLS] + 2-5 words + [SEP]
EMBEDDING = TensorSpec("embedding", "TYPE_FP32", (384,))  # unit rows, the teacher's space
SEARCH_ENCODER = OnnxSpec(
    name="search_encoder",
    inputs=(INPUT_IDS,),
    outputs=(EMBEDDING,),
    max_batch_size=64,
    default_timeout_us=200_000,
    preferred_batch_size=(8, 32),
    warmup_dynamic_dim=8,
)


def run_encoder(sess, ids: np.ndarray, batch: int = 256) -> np.ndarray:
    """float32 [n, 384]: an encoder session over token ids [n, T], trimmed per batch."""
    out = []
    for i in range(0, len(ids), batch):
        x = ids[i : i + batch]
        out.append(sess.run(None, {INPUT_IDS.name: x[:, : max(1, int((x != 0).sum(1).max()))]})[0])
    return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


def encoder_latency(path: Path, runs: int, budget_s: float) -> dict[str, float]:
    """Median ms of one query of LATENCY_TOKENS tokens (batch 1) and of 64 queries, on ONE
    ONNX Runtime thread (the served setting)."""
    sess = onnx_tools.session(path, threads=1)
    rng = np.random.default_rng(0)
    out = {}
    for b in (1, 64):
        x = rng.integers(1000, 20000, (b, LATENCY_TOKENS)).astype(np.int64)
        x[:, 0], x[:, -1] = 101, 102  # [CLS] ... [SEP], as the tokenizer writes them
        out[f"batch_{b}"] = onnx_tools.measure_latency_ms(
            lambda x=x: sess.run(None, {INPUT_IDS.name: x}), runs=runs, budget_s=budget_s
        )
    return out


@dataclass
class Encoded:
    """One ONNX file of the query encoder and its session."""

    path: Path
    sess: object

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        return run_encoder(self.sess, ids)


def export_student(model, ids: np.ndarray, reference: np.ndarray, work: Path):
    """The student as ONNX (checked against the torch `reference` on `ids`) and its dynamic
    int8 variant (`INT8_OPS`, per channel): (fp32, int8, the export check)."""
    import torch

    example = (torch.tensor(ids[:4, : max(2, int((ids[:4] != 0).sum(1).max()))]),)
    path = SEARCH_ENCODER.export(model, example, work / "student_search.onnx")
    fp32 = Encoded(path, onnx_tools.session(path))
    check = SEARCH_ENCODER.check([reference], [fp32(ids)])
    if not check.passed:
        raise RuntimeError(f"{SEARCH_ENCODER.name}: ONNX output differs from torch: {check}")
    q = onnx_tools.quantize_dynamic_int8(
        path, work / "student_search_int8.onnx", per_channel=True, op_types=INT8_OPS
    )
    return fp32, Encoded(q, onnx_tools.session(q)), check
