"""The export steps shared by the text models: the graphs every head is evaluated from (the
student with all its heads, fp32 and each int8 mode), the teacher's reference graph, export +
numeric check, latency, and publishing a model folder (ONNX file, `config.toml`, card)."""

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
from export.text_data import INPUT_IDS, TextData, TextIds, TextPlan, dataset_card
from export.text_distil import TextModels
from export.text_metrics import run_sorted, run_sorted_all
from export.text_models import EMBED_DIM, AllHeads, Classifier

__all__ = [
    "EMBEDDING",
    "INT8_MODES",
    "INT8_NOTE",
    "Bench",
    "Exported",
    "Graph",
    "TextRun",
    "contract",
    "heads_spec",
    "logits",
    "teacher_spec",
]

EMBEDDING = TensorSpec("embedding", "TYPE_FP32", (EMBED_DIM,))  # unit rows
LATENCY_TOKENS = 32
INT8_NOTE = "dynamic int8, per-channel MatMul weights"
# dynamic int8 of the encoder's MatMuls (no calibration data), per-channel or per-tensor scales:
# the mode of each head is chosen on validation macro-F1
INT8_MODES = {"int8 per-channel": True, "int8 per-tensor": False}


def logits(name: str, n_labels: int) -> TensorSpec:
    return TensorSpec(name, "TYPE_FP32", (n_labels,))


def heads_spec(name: str, label_names: dict[str, list[str]]) -> OnnxSpec:
    """A graph with every head's logits (`<task>_logits`), in `label_names` order."""
    heads = tuple(logits(f"{k}_logits", len(v)) for k, v in label_names.items())
    return OnnxSpec(name, inputs=(INPUT_IDS,), outputs=heads, max_batch_size=64)


def teacher_spec(label_names: dict[str, list[str]]) -> OnnxSpec:
    """The teacher as one graph (every head): the reference for size and latency, never served
    (its heads are small next to the encoder)."""
    return heads_spec("teacher", label_names)


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
    """Median latency of a session on fixed random 32-token inputs, at each of `batches`."""

    runs: int
    budget_s: float
    batches: tuple[int, ...] = (1, 64)
    inputs: dict[int, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        shape = {b: (b, LATENCY_TOKENS) for b in self.batches}
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

    def quantized(self, ids: np.ndarray, per_channel: bool = True) -> Exported:
        """Dynamic int8 (MatMul weights) beside this file, run on `ids`."""
        mode = "int8" if per_channel else "int8_tensor"
        dst = self.path.with_name(f"{self.path.stem}_{mode}.onnx")
        q = onnx_tools.quantize_dynamic_int8(
            self.path, dst, per_channel=per_channel, op_types=("MatMul",)
        )
        return Exported.load(q, ids)


@dataclass
class Graph:
    """The student with every head as one ONNX file (fp32 or an int8 mode): its logits per task
    on validation (every choice) and, once asked, on test (the card's rows)."""

    path: Path
    tasks: list[str]
    ids: TextIds
    valid: dict[str, np.ndarray] = field(init=False)
    _test: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.valid = self._run("valid")

    def _run(self, split: str) -> dict[str, np.ndarray]:
        return self.run(self.ids.split[split])

    def run(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Every head's logits on `ids` (length-sorted batches of 64)."""
        sess = onnx_tools.session(self.path, threads=2)
        return dict(zip(self.tasks, run_sorted_all(sess, ids), strict=True))

    @property
    def test(self) -> dict[str, np.ndarray]:
        if self._test is None:
            self._test = self._run("test")
        return self._test


@dataclass
class TextRun:
    """Everything the served text models are exported from, and the failures met publishing."""

    opts: ExportOptions
    plan: TextPlan
    data: TextData
    ids: TextIds
    models: TextModels
    bench: Bench
    work: Path  # the export cache of this build: ONNX files before they are published
    tokenizer: str  # the serving tokenizer.json
    extra: dict[str, Any] = field(default_factory=dict)  # every card's family-wide entries
    graphs: dict[str, Graph] = field(default_factory=dict)  # "student" and each int8 mode
    teacher_size: int = 0
    teacher_latency: dict[str, float] = field(default_factory=dict)
    failures: list[Exception] = field(default_factory=list)
    _check: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def teacher(self) -> Classifier:
        return self.models.teacher

    @property
    def student(self) -> Classifier:
        return self.models.student

    @property
    def check_ids(self) -> np.ndarray:
        """The test reviews every served file is compared on (with torch and with its graph)."""
        return self.ids.split["test"][: self.plan.check_reviews]

    def graph_on_check(self, graph: str) -> dict[str, np.ndarray]:
        """Every head's logits of graph `graph` on `check_ids`, run once for all the heads."""
        if graph not in self._check:
            self._check[graph] = self.graphs[graph].run(self.check_ids)
        return self._check[graph]

    def dataset_card(self, task: str) -> dict[str, Any]:
        return dataset_card(self.data, task, "--quick" if self.opts.quick else self.opts.tier)

    def export_graphs(self) -> None:
        """The teacher's reference graph (size, latency) and the student's graphs with every
        head, fp32 and each int8 mode, run on validation."""
        tasks = self.data.tasks
        spec = teacher_spec(self.data.label_names)
        path = spec.export(
            AllHeads(self.teacher, tasks), self.example(), self.work / "teacher.onnx"
        )
        self.teacher_size = path.stat().st_size
        self.teacher_latency = self.bench.latency(onnx_tools.session(path))
        spec = heads_spec("student_heads", self.data.label_names)
        fp32 = spec.export(
            AllHeads(self.student, tasks), self.example(), self.work / "student.onnx"
        )
        self.graphs["student"] = Graph(fp32, tasks, self.ids)
        for mode, per_channel in INT8_MODES.items():
            dst = self.work / f"student_{mode.replace(' ', '_')}.onnx"
            q = onnx_tools.quantize_dynamic_int8(fp32, dst, per_channel, op_types=("MatMul",))
            self.graphs[mode] = Graph(q, tasks, self.ids)

    def example(self) -> tuple:
        """The tracing input of every export: 4 validation reviews, 16 tokens."""
        import torch

        return (torch.tensor(self.ids.split["valid"][:4, :16]),)

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
