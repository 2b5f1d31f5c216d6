"""The export steps shared by the text models: what one run of the family holds after distillation
(`TextRun`), the teacher's reference graph, export + numeric check, int8 quantization, latency,
and publishing a model folder (ONNX file, `config.toml` from its `OnnxSpec`, card)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export import onnx_tools
from export.card import Card
from export.onnx_tools import ExportCheck
from export.options import ExportOptions, finish
from export.repository import ModelFolder
from export.specs import OnnxSpec, TensorSpec
from export.text_data import INPUT_IDS, TextData, TextIds, tokenizer_json
from export.text_distil import Teacher
from export.text_metrics import embed, run_sorted
from export.text_models import EMBED_DIM, AllHeads, Encoder

__all__ = [
    "EMBEDDING",
    "INT8_NOTE",
    "Bench",
    "Exported",
    "TextRun",
    "contract",
    "logits",
    "teacher_spec",
]

EMBEDDING = TensorSpec("embedding", "TYPE_FP32", (EMBED_DIM,))  # unit rows
LATENCY_TOKENS = 32
INT8_NOTE = "dynamic int8, per-channel MatMul weights"


def logits(name: str, n_labels: int) -> TensorSpec:
    return TensorSpec(name, "TYPE_FP32", (n_labels,))


def teacher_spec(label_names: dict[str, list[str]]) -> OnnxSpec:
    """The teacher as one graph (embedding + every head): the reference for size and latency,
    never served (its heads are tiny next to the encoder)."""
    heads = tuple(logits(f"{k}_logits", len(v)) for k, v in label_names.items())
    return OnnxSpec("teacher", inputs=(INPUT_IDS,), outputs=(EMBEDDING, *heads), max_batch_size=64)


def contract(spec: OnnxSpec) -> dict[str, Any]:
    """The card's record of the served graph: tensors and the export check's tolerance."""

    def tensors(ts: tuple[TensorSpec, ...]) -> list[dict]:
        return [{"name": t.name, "data_type": t.data_type, "dims": list(t.dims)} for t in ts]

    return {
        "inputs": tensors(spec.inputs),
        "outputs": tensors(spec.outputs),
        "check": {"atol": spec.atol, "min_cos": spec.min_cos},
    }


@dataclass
class Bench:
    """Median latency of a session on fixed random 32-token inputs, at batch 1 and 64."""

    runs: int
    budget_s: float
    inputs: dict[int, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        shape = {b: (b, LATENCY_TOKENS) for b in (1, 64)}
        self.inputs = {
            b: np.random.default_rng(0).integers(1000, 20000, s).astype(np.int64)
            for b, s in shape.items()
        }

    def latency(self, sess) -> dict[str, float]:
        return {
            f"batch_{b}": onnx_tools.measure_latency_ms(
                lambda x=x: sess.run(None, {INPUT_IDS.name: x}),
                runs=self.runs,
                budget_s=self.budget_s,
            )
            for b, x in self.inputs.items()
        }


@dataclass
class Exported:
    """One ONNX file of a model, its session and its first output on the evaluation ids."""

    path: Path
    sess: Any
    out: np.ndarray

    @classmethod
    def load(cls, path: Path, ids: np.ndarray) -> Exported:
        sess = onnx_tools.session(path)
        return cls(path, sess, run_sorted(sess, ids))

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def quantized(self, ids: np.ndarray) -> Exported:
        """Dynamic int8 (per-channel MatMul weights) beside this file, run on `ids`."""
        dst = self.path.with_name(f"{self.path.stem}_int8.onnx")
        q = onnx_tools.quantize_dynamic_int8(self.path, dst, per_channel=True, op_types=("MatMul",))
        return Exported.load(q, ids)


@dataclass
class TextRun:
    """Everything the served text models are exported from, and the failures met publishing."""

    opts: ExportOptions
    data: TextData
    ids: TextIds
    teacher: Teacher
    student: Encoder
    bench: Bench
    work: Path  # the export cache of this build: ONNX files before they are published
    tokenizer: str  # the serving tokenizer.json
    student_test: dict[str, np.ndarray]  # the torch student's test logits per task
    teacher_size: int = 0
    teacher_latency: dict[str, float] = field(default_factory=dict)
    failures: list[Exception] = field(default_factory=list)

    @classmethod
    def start(cls, opts: ExportOptions, data, ids, teacher: Teacher, student: Encoder) -> TextRun:
        q = opts.quick
        run = cls(
            opts,
            data,
            ids,
            teacher,
            student,
            Bench(runs=10 if q else 200, budget_s=1 if q else 10),
            opts.cache / "text",
            tokenizer_json(teacher.path),
            embed(student, ids.split["test"])[1],
        )
        graph = AllHeads(teacher.encoder, data.tasks)
        path = teacher_spec(data.label_names).export(
            graph, run.example(), run.work / "teacher.onnx"
        )
        run.teacher_size = path.stat().st_size
        run.teacher_latency = run.bench.latency(onnx_tools.session(path))
        return run

    def example(self) -> tuple:
        """The tracing input of every export: 4 test reviews, 16 tokens."""
        import torch

        return (torch.tensor(self.ids.split["test"][:4, :16]),)

    def export_checked(
        self, spec: OnnxSpec, module, file: str, ids: np.ndarray, reference: np.ndarray
    ) -> tuple[Exported, ExportCheck]:
        """Export `module` as `spec`, run it on `ids`, and compare with the torch `reference`."""
        path = spec.export(module, self.example(), self.work / file)
        got = Exported.load(path, ids)
        check = spec.check([reference], [got.out])
        if not check.passed:
            raise RuntimeError(f"{spec.name}: ONNX output differs from torch: {check}")
        return got, check

    def attempt(self, fn, *args) -> bool:
        """Run a publishing step; a failure (a gate) is kept for the end, the other models go on."""
        try:
            fn(*args)
        except Exception as e:
            self.failures.append(e)
            return False
        return True

    def publish(self, spec: OnnxSpec, served: Exported, notes: dict[str, str], card: Card) -> bool:
        """The model folder: `1/model.onnx`, `config.toml` from `spec`, the card (gate permitting)."""
        folder = ModelFolder(self.opts.out, spec.name)
        (folder.version / "model.onnx").write_bytes(served.path.read_bytes())
        folder.write_config(spec.config(notes))
        card.extra["contract"] = contract(spec)
        return self.attempt(finish, self.opts, folder, card)

    def raise_failures(self) -> None:
        if len(self.failures) == 1:
            raise self.failures[0]
        if self.failures:
            raise type(self.failures[0])("\n".join(str(e) for e in self.failures))
