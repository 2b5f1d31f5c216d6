"""`shopserve export model`: a user's torch module into the repository, validated and gated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from export import onnx_tools
from export.cli import main
from server.contract.model_config import load_config
from tests.export.toy_models import make_mlp


def test_export_user_module_with_int8(tmp_path: Path):
    weights = tmp_path / "w.pt"
    torch.save(make_mlp().state_dict(), weights)
    argv = [
        "model",
        "--out",
        str(tmp_path / "repo"),
        "--name",
        "toy",
        "--factory",
        "tests.export.toy_models:make_mlp",
        "--state-dict",
        str(weights),
        "--input",
        "features:fp32:16",
        "--output",
        "logits:fp32:4",
        "--quantize",
    ]
    assert main(argv) == 0
    folder = tmp_path / "repo" / "toy"
    config = load_config(folder / "config.toml")
    assert [t.name for t in config.input] == ["features"] and config.output[0].dims == [4]
    x = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    got = onnx_tools.session(folder / "1" / "model.onnx").run(None, {"features": x})[0]
    with torch.no_grad():
        ref = make_mlp()(torch.from_numpy(x)).numpy()
    assert onnx_tools.cosine_rows(ref, got).min() > 0.99
    assert (folder / "card.json").exists()
    # a second export is a new version: a running server loads it through the repository API
    assert main(argv) == 0
    assert (folder / "2" / "model.onnx").exists()


def test_bad_tensor_spec_is_a_clear_error(tmp_path: Path, capsys):
    try:
        main(
            [
                "model",
                "--out",
                str(tmp_path),
                "--name",
                "x",
                "--factory",
                "tests.export.toy_models:make_mlp",
                "--input",
                "features-fp32",
                "--output",
                "y:fp32:4",
            ]
        )
    except SystemExit as e:
        assert "name:dtype:dims" in str(e)
    else:
        raise AssertionError("expected SystemExit")
