from pathlib import Path

import numpy as np
import pytest

from server.contract.model_config import decode_config
from server.errors import ModelLoadError
from server.runtime.session import OrtModel
from server.settings import load_settings


def _config(text: str, **subs: str):
    return decode_config(text.format(**subs))


MLP = """
name = "mlp"
max_batch_size = 1024
[[input]]
name = "features"
data_type = "TYPE_FP32"
dims = [64]
[[output]]
name = "score"
data_type = "TYPE_FP32"
dims = [1]
[[instance_group]]
count = {count}
kind = "{kind}"
[optimization]
io_binding = "{binding}"
"""


def test_kind_gpu_fails_clearly_without_cuda(demo_repo: Path):
    from server.runtime.providers import cuda_driver_present

    if cuda_driver_present():
        pytest.skip("this machine has a CUDA driver")
    cfg = _config(MLP, count="1", kind="KIND_GPU", binding="auto")
    with pytest.raises(ModelLoadError, match="KIND_GPU"):
        OrtModel(demo_repo / "mlp/1/model.onnx", cfg)


def test_instances_io_binding_and_warmup(demo_repo: Path):
    cfg = _config(MLP, count="2", kind="KIND_CPU", binding="on")
    model = OrtModel(demo_repo / "mlp/1/model.onnx", cfg)
    assert model.device == "cpu" and model.instances == 2 and model.io_binding
    x = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
    a = model.run({"features": x}, 0)["score"]
    b = model.run({"features": x}, 1)["score"]
    np.testing.assert_array_equal(a, b)
    timings = model.warmup()
    assert sorted(timings) == model.warmup_sizes() and timings[1] > 0
    assert model.warmup_sizes()[0] == 1 and model.warmup_sizes()[-1] == 1024


def test_settings_file_then_env_then_flags(tmp_path: Path):
    f = tmp_path / "s.toml"
    f.write_text('port = 9000\nlog_level = "debug"\nmax_body_bytes = 4096\n')
    s = load_settings(
        f, environ={"SHOPSERVE_PORT": "9100", "SHOPSERVE_LOAD_MODELS": "a,b"}, host="127.0.0.2"
    )
    assert (s.port, s.log_level, s.max_body_bytes, s.host, s.load_models) == (
        9100,
        "debug",
        4096,
        "127.0.0.2",
        ["a", "b"],
    )
    with pytest.raises(Exception, match="port"):
        load_settings(None, environ={"SHOPSERVE_PORT": "-3"})
