"""`shopserve export model`: a user's own model into the repository, validated and optionally int8.

    shopserve export model --out DIR --name NAME --factory package.module:factory [--state-dict W.pt]
        --input features:fp32:64 --output score:fp32:1 [--max-batch-size 256] [--quantize]
    shopserve export model --out DIR --name NAME --hf HF_FOLDER [--pooling mean]
    shopserve export model --out DIR --name NAME --factory ... --spec spec.json

Tensors are `name:dtype:dims` with dims after the batch dim, comma-separated, -1 for dynamic
(`input_ids:int64:-1`); a dynamic int input is padded with `--pad-value`. A spec file holds the same
as JSON: {"inputs": [{"name", "dtype", "dims", "pad_value"?}], "outputs": [...], "max_batch_size"}.
The export is checked against the source model on random inputs (cosine and max abs difference);
`--quantize` adds dynamic int8 behind the same gate as the built-in families (mean cosine to the
source >= 0.99). The model lands in a new numeric version folder, so a running server picks it up
through the repository API (load / reload) with no further step.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from export import onnx_tools
from export.card import Card, Row, Rule, check_gates
from export.repository import Tensor, config_toml

__all__ = ["main", "parse_tensor"]

_DTYPES = {
    "fp32": ("TYPE_FP32", np.float32),
    "fp16": ("TYPE_FP16", np.float16),
    "int64": ("TYPE_INT64", np.int64),
    "int32": ("TYPE_INT32", np.int32),
    "bool": ("TYPE_BOOL", np.bool_),
}


def parse_tensor(text: str) -> dict:
    try:
        name, dtype, dims = text.split(":")
        return {"name": name, "dtype": dtype.lower(), "dims": [int(d) for d in dims.split(",")]}
    except ValueError:
        raise SystemExit(
            f"bad tensor {text!r}: expected name:dtype:dims, e.g. features:fp32:64"
        ) from None


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
    import torch
    from torch import nn
    from transformers import AutoModel

    onnx_tools.offline_env()
    base = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()

    class HF(nn.Module):
        """input_ids (0 = pad; the mask is computed in-graph) -> last_hidden_state or mean embedding."""

        def __init__(self):
            super().__init__()
            self.base = base

        def forward(self, input_ids):
            mask = (input_ids != 0).to(torch.float32)
            h = self.base(input_ids=input_ids, attention_mask=mask).last_hidden_state
            if pooling != "mean":
                return h
            return (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)

    hidden = int(base.config.hidden_size)
    outputs = (
        [{"name": "embedding", "dtype": "fp32", "dims": [hidden]}]
        if pooling == "mean"
        else [{"name": "last_hidden_state", "dtype": "fp32", "dims": [-1, hidden]}]
    )
    vocab = int(getattr(base.config, "vocab_size", 1000))
    return (
        HF().eval(),
        [{"name": "input_ids", "dtype": "int64", "dims": [-1], "pad_value": 0, "high": vocab}],
        outputs,
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


def _mean_cos(ref: list[np.ndarray], got: list[np.ndarray]) -> float:
    return round(
        float(
            np.mean([onnx_tools.cosine_rows(r, g).mean() for r, g in zip(ref, got, strict=True)])
        ),
        5,
    )


def main(argv: list[str]) -> int:
    import torch

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
    p.add_argument("--allow-regression", action="store_true")
    a = p.parse_args(argv)

    torch.set_num_threads(2)
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

    names_in, names_out = [t["name"] for t in inputs], [t["name"] for t in outputs]
    axes = {
        t["name"]: {
            0: "batch",
            **{i + 1: f"{t['name']}_{i}" for i, d in enumerate(t["dims"]) if d == -1},
        }
        for t in inputs + outputs
    }
    rng = np.random.default_rng(0)
    example = tuple(torch.from_numpy(x) for x in _random_inputs(inputs, 2, rng))
    held = _random_inputs(inputs, 32, rng, dyn=24)
    with torch.no_grad():
        ref = model(*[torch.from_numpy(x) for x in held])
    ref = [r.numpy() for r in (ref if isinstance(ref, tuple | list) else (ref,))]

    folder = a.out / a.name
    versions = (
        [int(d.name) for d in folder.glob("*") if d.name.isdigit()] if folder.exists() else []
    )
    version = max(versions, default=0) + 1
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = onnx_tools.export_onnx(
            model, example, Path(tmp) / "model.onnx", names_in, names_out, axes
        )
        feeds = dict(zip(names_in, held, strict=True))
        sess = onnx_tools.session(fp32)
        got = sess.run(None, feeds)
        check = onnx_tools.check_outputs(ref, got, atol=1e-3)
        lat = {
            "batch_1": onnx_tools.measure_latency_ms(
                lambda: sess.run(None, {k: v[:1] for k, v in feeds.items()}), runs=50
            )
        }
        rows = [
            Row(
                "student",
                _mean_cos(ref, got),
                {"mean_cosine": _mean_cos(ref, got), "max_abs_diff": check.max_abs_diff},
                size_bytes=fp32.stat().st_size,
                latency_ms=lat,
                note="fp32 ONNX vs the source model",
            )
        ]
        rules = [
            Rule(
                "ONNX matches the source model (max abs diff <= 1e-3 or min cosine >= 0.9999)",
                check.max_abs_diff,
                1e-3,
                check.passed,
            )
        ]
        served = fp32
        if a.quantize:
            q = onnx_tools.quantize_dynamic_int8(fp32, Path(tmp) / "model-int8.onnx")
            qs = onnx_tools.session(q)
            q_got = qs.run(None, feeds)
            cos = _mean_cos(ref, q_got)
            rows.append(
                Row(
                    "student-int8",
                    cos,
                    {"mean_cosine": cos},
                    size_bytes=q.stat().st_size,
                    latency_ms={
                        "batch_1": onnx_tools.measure_latency_ms(
                            lambda: qs.run(None, {k: v[:1] for k, v in feeds.items()}), runs=50
                        )
                    },
                    note="dynamic int8, per-channel",
                )
            )
            rules.append(
                Rule("student-int8 mean cosine to the source model >= 0.99", cos, 0.99, cos >= 0.99)
            )
            served = q
        gate = check_gates(
            rows, served="student", speed_batch="batch_1", min_speedup=0.0, quick=True
        )
        gate["rules"] = [r.__dict__ for r in rules]
        gate["passed"] = all(r.passed for r in rules)
        text = config_toml(
            a.name,
            [
                Tensor(
                    t["name"],
                    _DTYPES[t["dtype"]][0],
                    t["dims"],
                    pad_value=t.get("pad_value", a.pad_value) if -1 in t["dims"] else None,
                )
                for t in inputs
            ],
            [Tensor(t["name"], _DTYPES[t["dtype"]][0], t["dims"]) for t in outputs],
            max_batch_size=mbs,
            preferred_batch_size=[min(8, mbs)] if mbs > 0 else None,
            parameters={
                "source": a.factory or str(a.hf),
                "variant": "student-int8" if served != fp32 else "student",
            },
        )
        card = Card(
            a.name,
            "user model exported with `shopserve export model`",
            {
                "name": "random inputs from the tensor spec",
                "rows": 32,
                "split": "held-out random batch",
            },
            "mean_cosine",
            rows,
            gate,
            extra={
                "command": "shopserve export model " + " ".join(argv),
                "export_check": check.to_dict(),
                "version": version,
            },
        )
        if not gate["passed"] and not a.allow_regression:
            failed = [r.rule for r in rules if not r.passed]
            print(
                f"{a.name}: gate failed, nothing written:\n  - " + "\n  - ".join(failed),
                file=sys.stderr,
            )
            return 1
        (folder / str(version)).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(served, folder / str(version) / "model.onnx")
        (folder / "config.toml").write_text(text)
        card.write(folder)
    print(
        f"{a.name}: version {version} written to {folder} (gate {'passed' if gate['passed'] else 'FAILED, allowed'})"
    )
    return 0
