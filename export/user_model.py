"""`shopserve export model`: a user's own model into the repository, validated and optionally int8.

    shopserve export model --out DIR --name NAME --factory package.module:factory [--state-dict W.pt]
        --input features:fp32:64 --output score:fp32:1 [--max-batch-size 256] [--quantize] [--fp16]
    shopserve export model --out DIR --name NAME --hf HF_FOLDER [--pooling mean]
    shopserve export model --out DIR --name NAME --factory ... --spec spec.json

Tensors are `name:dtype:dims` with dims after the batch dim, comma-separated, -1 for dynamic
(`input_ids:int64:-1`); a dynamic int input is padded with `--pad-value`. A spec file holds the same
as JSON: {"inputs": [{"name", "dtype", "dims", "pad_value"?}], "outputs": [...], "max_batch_size"}.
The export is checked against the source model on random inputs (cosine and max abs difference);
`--quantize` adds dynamic int8 behind the same gate as the built-in families (mean cosine to the
source >= 0.99). `--fp16` also writes `model_fp16.onnx` beside it (fp16 weights and activations,
fp32 inputs and outputs) for CUDA sessions, which load it in place of `model.onnx` (config
`optimization.cuda_fp16`, docs/gpu.md); it is checked against the source model like the others
(mean cosine >= 0.999) on ONNX Runtime's CPU provider. The model lands in a new numeric version
folder, so a running server picks it up through the repository API (load / reload) with no
further step.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export import onnx_tools
from export.card import Card, Row, Rule, gate_of, spec_summary
from export.specs import OnnxSpec, TensorSpec
from server.contract.model_config import CONFIG_FILE, encode_config

__all__ = ["main", "parse_tensor"]

_DTYPES = {
    "fp32": ("TYPE_FP32", np.float32),
    "fp16": ("TYPE_FP16", np.float16),
    "int64": ("TYPE_INT64", np.int64),
    "int32": ("TYPE_INT32", np.int32),
    "bool": ("TYPE_BOOL", np.bool_),
}
HELD_OUT_ROWS = 32
LATENCY_RUNS = 50
FP16_MIN_COSINE = 0.999
FP16_FILE = "model_fp16.onnx"  # server/runtime/session.py::fp16_variant of model.onnx


def parse_tensor(text: str) -> dict:
    try:
        name, dtype, dims = text.split(":")
        return {"name": name, "dtype": dtype.lower(), "dims": [int(d) for d in dims.split(",")]}
    except ValueError:
        raise SystemExit(
            f"bad tensor {text!r}: expected name:dtype:dims, e.g. features:fp32:64"
        ) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shopserve export model", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--name", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--factory", help="package.module:factory returning a torch.nn.Module")
    src.add_argument("--hf", type=Path, help="a Hugging Face model folder")
    p.add_argument("--state-dict", type=Path)
    p.add_argument(
        "--pooling", choices=["mean"], help="HF: output the masked mean of the last hidden state"
    )
    p.add_argument("--input", action="append", default=[], type=parse_tensor)
    p.add_argument("--output", action="append", default=[], type=parse_tensor)
    p.add_argument("--pad-value", type=float, default=0)
    p.add_argument("--spec", type=Path, help="JSON file with inputs/outputs/max_batch_size")
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument(
        "--quantize", action="store_true", help="dynamic int8 (per-channel MatMul/Gemm), gated"
    )
    p.add_argument(
        "--fp16",
        action="store_true",
        help=f"also write {FP16_FILE} for CUDA sessions (fp16 inside, fp32 at the edges), checked",
    )
    p.add_argument("--allow-regression", action="store_true")
    return p


# -- the source model and its tensors --------------------------------------------------------------


def _load_factory(ref: str, state_dict: Path | None):
    import torch

    module_name, _, attr = ref.partition(":")
    if not attr:
        raise SystemExit(f"--factory {ref!r}: expected package.module:factory")
    model = getattr(importlib.import_module(module_name), attr)()
    if state_dict is not None:
        model.load_state_dict(torch.load(state_dict, map_location="cpu", weights_only=True))
    return model.eval()


def _load_hf(folder: Path, pooling: str | None):
    """A Hugging Face encoder: the module and its default tensors (input_ids -> hidden states)."""
    from transformers import AutoModel

    from export.user_hf import HFEncoder

    onnx_tools.offline_env()
    base = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    hidden = int(base.config.hidden_size)
    outputs = (
        [{"name": "embedding", "dtype": "fp32", "dims": [hidden]}]
        if pooling == "mean"
        else [{"name": "last_hidden_state", "dtype": "fp32", "dims": [-1, hidden]}]
    )
    vocab = int(getattr(base.config, "vocab_size", 1000))
    inputs = [{"name": "input_ids", "dtype": "int64", "dims": [-1], "pad_value": 0, "high": vocab}]
    return HFEncoder(base, pooling).eval(), inputs, outputs


@dataclass
class Source:
    """The model to export and its tensors as given (dicts: name, dtype, dims, pad_value?, high?)."""

    model: object
    inputs: list[dict]
    outputs: list[dict]
    max_batch_size: int


def load_source(a: argparse.Namespace) -> Source:
    inputs, outputs, mbs = a.input, a.output, a.max_batch_size
    if a.spec:
        spec = json.loads(a.spec.read_text())
        inputs, outputs = spec.get("inputs", inputs), spec.get("outputs", outputs)
        mbs = int(spec.get("max_batch_size", mbs))
    if a.hf:
        model, hf_in, hf_out = _load_hf(a.hf, a.pooling)
        inputs, outputs = inputs or hf_in, outputs or hf_out
    else:
        model = _load_factory(a.factory, a.state_dict)
    if not inputs or not outputs:
        raise SystemExit("give --input and --output (or --spec): name:dtype:dims")
    for t in inputs + outputs:
        if t["dtype"] not in _DTYPES:
            raise SystemExit(f"{t['name']}: dtype {t['dtype']!r} not one of {sorted(_DTYPES)}")
    return Source(model, inputs, outputs, mbs)


def _tensor_spec(t: dict, pad_value: float = 0) -> TensorSpec:
    dims = tuple(t["dims"])
    pad = t.get("pad_value", pad_value) if -1 in dims else 0
    return TensorSpec(t["name"], _DTYPES[t["dtype"]][0], dims, pad_value=pad)


def build_spec(name: str, src: Source, pad_value: float) -> OnnxSpec:
    """The user's tensors as an `OnnxSpec` (a dynamic input is padded with `pad_value`)."""
    mbs = src.max_batch_size
    return OnnxSpec(
        name=name,
        inputs=tuple(_tensor_spec(t, pad_value) for t in src.inputs),
        outputs=tuple(_tensor_spec(t) for t in src.outputs),
        max_batch_size=mbs,
        preferred_batch_size=(min(8, mbs),) if mbs > 0 else (),
    )


def _random_inputs(
    inputs: list[dict], batch: int, rng: np.random.Generator, dyn: int = 16
) -> list[np.ndarray]:
    out = []
    for t in inputs:
        shape = [batch] + [dyn if d == -1 else d for d in t["dims"]]
        np_t = _DTYPES[t["dtype"]][1]
        if np.issubdtype(np_t, np.integer):
            out.append(rng.integers(1, int(t.get("high", 100)), shape).astype(np_t))
        elif np_t is np.bool_:
            out.append(rng.random(shape) < 0.5)
        else:
            out.append(rng.standard_normal(shape).astype(np_t))
    return out


# -- export, check, quantize ---------------------------------------------------------------------


@dataclass
class Probe:
    """Random inputs: a small export example, a held-out batch and the source model's outputs."""

    example: tuple
    feeds: dict[str, np.ndarray]
    reference: list[np.ndarray]


def make_probe(src: Source, spec: OnnxSpec) -> Probe:
    import torch

    rng = np.random.default_rng(0)
    example = tuple(torch.from_numpy(x) for x in _random_inputs(src.inputs, 2, rng))
    held = _random_inputs(src.inputs, HELD_OUT_ROWS, rng, dyn=24)
    with torch.no_grad():
        ref = src.model(*[torch.from_numpy(x) for x in held])
    ref = [r.numpy() for r in (ref if isinstance(ref, tuple | list) else (ref,))]
    return Probe(example, dict(zip(spec.input_names, held, strict=True)), ref)


def _mean_cos(ref: list[np.ndarray], got: list[np.ndarray]) -> float:
    cos = [onnx_tools.cosine_rows(r, g).mean() for r, g in zip(ref, got, strict=True)]
    return round(float(np.mean(cos)), 5)


def _latency(sess, probe: Probe) -> dict[str, float]:
    feeds = onnx_tools.head_feeds(probe.feeds, (1,))
    return onnx_tools.latency_by_batch(sess, feeds, LATENCY_RUNS)


def export_checked(spec: OnnxSpec, src: Source, probe: Probe, path: Path):
    """fp32 ONNX at `path`, compared with the source model: (row, rule, check)."""
    spec.export(src.model, probe.example, path)
    sess = onnx_tools.session(path)
    got = sess.run(None, probe.feeds)
    check = spec.check(probe.reference, got)
    cos = _mean_cos(probe.reference, got)
    row = Row(
        "student",
        cos,
        {"mean_cosine": cos, "max_abs_diff": check.max_abs_diff},
        size_bytes=path.stat().st_size,
        latency_ms=_latency(sess, probe),
        note="fp32 ONNX vs the source model",
    )
    what = (
        f"ONNX matches the source model (max abs diff <= {spec.atol:g} "
        f"or min cosine >= {spec.min_cos:g})"
    )
    return row, Rule(what, check.max_abs_diff, spec.atol, check.passed), check


def quantize_checked(fp32: Path, probe: Probe, path: Path) -> tuple[Row, Rule]:
    """Dynamic int8 of `fp32` at `path`, gated on the mean cosine to the source model."""
    onnx_tools.quantize_dynamic_int8(fp32, path)
    sess = onnx_tools.session(path)
    cos = _mean_cos(probe.reference, sess.run(None, probe.feeds))
    row = Row(
        "student-int8",
        cos,
        {"mean_cosine": cos},
        size_bytes=path.stat().st_size,
        latency_ms=_latency(sess, probe),
        note="dynamic int8, per-channel",
    )
    rule = Rule("student-int8 mean cosine to the source model >= 0.99", cos, 0.99, cos >= 0.99)
    return row, rule


def fp16_checked(fp32: Path, probe: Probe, path: Path) -> tuple[Row, Rule, dict]:
    """The fp16 variant of the fp32 export at `path`, compared with the source model on ONNX
    Runtime's CPU provider (it runs fp16 graphs, slowly: no latency is recorded, the GPU's is
    what counts); (row, rule, what the card records)."""
    import onnx

    onnx_tools.convert_fp16(fp32, path)
    graph = onnx.load(str(path), load_external_data=False).graph
    elem = onnx.TensorProto.DataType.Name
    dtypes = {
        "inputs": sorted({elem(i.type.tensor_type.elem_type) for i in graph.input}),
        "outputs": sorted({elem(o.type.tensor_type.elem_type) for o in graph.output}),
        "weights": sorted({elem(t.data_type) for t in graph.initializer}),
    }
    got = onnx_tools.session(path).run(None, probe.feeds)
    cos = _mean_cos(probe.reference, got)
    diff = max(
        float(np.max(np.abs(r - g))) if r.size else 0.0
        for r, g in zip(probe.reference, got, strict=True)
    )
    row = Row(
        "student-fp16",
        cos,
        {"mean_cosine": cos, "max_abs_diff": round(diff, 6)},
        size_bytes=path.stat().st_size,
        note=f"{FP16_FILE}: loaded by CUDA sessions in place of model.onnx; checked on CPU",
    )
    rule = Rule(
        f"student-fp16 mean cosine to the source model >= {FP16_MIN_COSINE}",
        cos,
        FP16_MIN_COSINE,
        cos >= FP16_MIN_COSINE,
    )
    record = {
        "file": FP16_FILE,
        "mean_cosine": cos,
        "max_abs_diff": round(diff, 6),
        "checked_on": "CPUExecutionProvider",
        "dtypes": dtypes,
    }
    return row, rule, record


# -- the repository ------------------------------------------------------------------------------


def _next_version(folder: Path) -> int:
    versions = [int(d.name) for d in folder.glob("*") if d.name.isdigit()]
    return max(versions, default=0) + 1


def _card(spec: OnnxSpec, rows: list[Row], rules: list[Rule], argv: list[str], extra: dict):
    return Card(
        spec.name,
        "user model exported with `shopserve export model`",
        {
            "name": "random inputs from the tensor spec",
            "rows": HELD_OUT_ROWS,
            "split": "held-out random batch",
        },
        "mean_cosine",
        rows,
        gate_of(rules),
        extra={
            "command": "shopserve export model " + " ".join(argv),
            "contract": spec_summary(spec),
            **extra,
        },
    )


def _publish(
    folder: Path,
    version: int,
    served: Path,
    spec: OnnxSpec,
    notes: dict,
    card: Card,
    fp16: Path | None = None,
):
    (folder / str(version)).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(served, folder / str(version) / "model.onnx")
    if fp16 is not None:
        shutil.copyfile(fp16, folder / str(version) / FP16_FILE)
    (folder / CONFIG_FILE).write_bytes(encode_config(spec.config(notes)))
    card.write(folder)


def main(argv: list[str]) -> int:
    import torch

    a = _parser().parse_args(argv)
    torch.set_num_threads(2)
    src = load_source(a)
    spec = build_spec(a.name, src, a.pad_value)
    probe = make_probe(src, spec)
    folder = a.out / a.name
    version = _next_version(folder)
    with tempfile.TemporaryDirectory() as tmp:
        served = Path(tmp) / "model.onnx"
        row, rule, check = export_checked(spec, src, probe, served)
        rows, rules = [row], [rule]
        if a.quantize:
            served = Path(tmp) / "model-int8.onnx"
            q_row, q_rule = quantize_checked(Path(tmp) / "model.onnx", probe, served)
            rows.append(q_row)
            rules.append(q_rule)
        extra = {"export_check": check.to_dict(), "version": version}
        fp16 = Path(tmp) / FP16_FILE if a.fp16 else None
        if fp16 is not None:
            h_row, h_rule, extra["fp16"] = fp16_checked(Path(tmp) / "model.onnx", probe, fp16)
            rows.append(h_row)
            rules.append(h_rule)
        card = _card(spec, rows, rules, argv, extra)
        if not card.gate["passed"] and not a.allow_regression:
            failed = [r.rule for r in rules if not r.passed]
            print(
                f"{a.name}: gate failed, nothing written:\n  - " + "\n  - ".join(failed),
                file=sys.stderr,
            )
            return 1
        variant = "student-int8" if a.quantize else "student"
        notes = {"source": a.factory or str(a.hf), "variant": variant}
        if fp16 is not None:
            notes["cuda_variant"] = f"student-fp16 ({FP16_FILE})"
        _publish(folder, version, served, spec, notes, card, fp16)
    verdict = "passed" if card.gate["passed"] else "FAILED, allowed"
    print(f"{a.name}: version {version} written to {folder} (gate {verdict})")
    return 0
