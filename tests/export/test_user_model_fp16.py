"""`shopserve export model --fp16`: the fp16 variant for CUDA sessions beside the fp32 model,
checked against the source model and recorded in the card; the server's CPU sessions never load
it, and its inputs and outputs keep the config's dtypes so a CUDA session can serve it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from export.cli import main
from server.contract.model_config import load_config
from server.runtime.session import OrtModel, fp16_variant
from tests.export.toy_models import make_mlp


def _export(tmp_path: Path, *extra: str) -> Path:
    weights = tmp_path / "w.pt"
    torch.save(make_mlp().state_dict(), weights)
    argv = ["model", "--out", str(tmp_path / "repo"), "--name", "toy",
            "--factory", "tests.export.toy_models:make_mlp", "--state-dict", str(weights),
            "--input", "features:fp32:16", "--output", "logits:fp32:4", *extra]  # fmt: skip
    assert main(argv) == 0
    return tmp_path / "repo" / "toy"


def test_fp16_variant_is_written_checked_and_recorded(tmp_path: Path):
    folder = _export(tmp_path, "--fp16")
    model, half = folder / "1" / "model.onnx", folder / "1" / "model_fp16.onnx"
    assert fp16_variant(model) == half and half.is_file()
    card = json.loads((folder / "card.json").read_text())
    fp16 = card["fp16"]
    assert fp16["file"] == "model_fp16.onnx" and fp16["mean_cosine"] >= 0.999
    assert fp16["dtypes"] == {"inputs": ["FLOAT"], "outputs": ["FLOAT"], "weights": ["FLOAT16"]}
    row = next(r for r in card["rows"] if r["variant"] == "student-fp16")
    assert row["metrics"]["max_abs_diff"] < 0.05
    assert any("student-fp16" in r["rule"] and r["passed"] for r in card["gate"]["rules"])
    config = load_config(folder / "config.toml")
    assert config.optimization.cuda_fp16 == "auto"
    assert "model_fp16.onnx" in config.parameters["cuda_variant"]

    # CPU sessions load model.onnx; the fp16 file passes the same config checks a CUDA session
    # makes (names, dtypes, dims), and answers like the fp32 model
    served = OrtModel(model, config, "cpu")
    assert served.cuda_path is None and served.device == "cpu"
    as_cuda_would = OrtModel(half, config, "cpu")
    x = np.random.default_rng(1).standard_normal((8, 16)).astype(np.float32)
    a = served.run({"features": x})["logits"]
    b = as_cuda_would.run({"features": x})["logits"]
    assert b.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=0.02, rtol=0.02)


def test_without_the_flag_no_fp16_file(tmp_path: Path):
    folder = _export(tmp_path)
    assert not (folder / "1" / "model_fp16.onnx").exists()
    assert "cuda_variant" not in load_config(folder / "config.toml").parameters
