"""The GPU path on a real CUDA device: `pytest -m gpu` in bench/gpu_check.sh, on the lent H200.
Skipped wherever a CUDA session does not load (every CI run and developer machine so far)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.contract.model_config import DynamicBatching, InstanceGroup, Optimization
from server.runtime.providers import cuda_driver_present
from server.runtime.session import OrtModel, fp16_variant
from tests.configs import mlp_config

pytestmark = pytest.mark.gpu


def _cuda_loads() -> bool:
    if not cuda_driver_present():
        return False
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


needs_cuda = pytest.mark.skipif(not _cuda_loads(), reason="no CUDA device here")


def _mlp(tmp_path: Path) -> Path:
    from export.demo import mlp_weights, write_mlp

    path = tmp_path / "mlp" / "1" / "model.onnx"
    write_mlp(path, mlp_weights())
    return path


def _x(rows: int) -> np.ndarray:
    return np.random.default_rng(rows).standard_normal((rows, 64)).astype(np.float32)


@needs_cuda
def test_cuda_session_with_io_binding_answers_like_the_cpu(tmp_path: Path):
    path = _mlp(tmp_path)
    gpu = OrtModel(path, mlp_config(instance_group=[InstanceGroup(count=2, kind="KIND_GPU")]))
    cpu = OrtModel(path, mlp_config(), "cpu")
    assert gpu.device == "cuda" and gpu.io_binding and gpu.choice.kinds == ["KIND_GPU"]
    assert gpu.sessions[0].get_providers()[0] == "CUDAExecutionProvider"
    for rows in (1, 7, 4096):
        x = _x(rows)
        for instance in (0, 1):
            got = gpu.run({"features": x}, instance)["score"]
            np.testing.assert_allclose(got, cpu.run({"features": x})["score"], atol=1e-4)
    assert sorted(gpu.warmup()) == gpu.warmup_sizes()


@needs_cuda
def test_the_measured_choice_puts_large_batches_on_cuda(tmp_path: Path):
    cfg = mlp_config(
        max_batch_size=8192, dynamic_batching=DynamicBatching(preferred_batch_size=[4096])
    )
    model = OrtModel(_mlp(tmp_path), cfg, "auto")
    choice = model.choice
    print(choice.summary())  # the decision and both curves, in the gpu_check log
    assert choice.device in ("cuda", "split") and choice.cuda_ns
    assert choice.device_for(8192) == choice.device_for(4096) == "cuda"
    x = _x(4096)
    np.testing.assert_allclose(
        model.run({"features": x})["score"],
        OrtModel(model.path, cfg, "cpu").run({"features": x})["score"],
        atol=1e-4,
    )


@needs_cuda
def test_cuda_loads_the_fp16_variant_and_cpu_the_model(tmp_path: Path):
    from export.onnx_tools import convert_fp16

    path = _mlp(tmp_path)
    convert_fp16(path, fp16_variant(path))
    gpu = OrtModel(path, mlp_config(instance_group=[InstanceGroup(kind="KIND_GPU")]))
    assert gpu.cuda_path == fp16_variant(path)
    x = _x(512)
    ref = OrtModel(path, mlp_config(), "cpu").run({"features": x})["score"]
    got = gpu.run({"features": x})["score"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=0.02, rtol=0.02)
    off = mlp_config(
        instance_group=[InstanceGroup(kind="KIND_GPU")],
        optimization=Optimization(cuda_fp16="off"),
    )
    assert OrtModel(path, off).cuda_path == path


@needs_cuda
def test_config_and_stats_show_where_the_model_runs(tmp_path: Path):
    from litestar.testing import TestClient

    from server.app import create_app
    from server.contract.model_config import encode_config
    from server.settings import Settings

    path = _mlp(tmp_path)
    cfg = mlp_config(max_batch_size=4096, dynamic_batching=DynamicBatching())
    (path.parent.parent / "config.toml").write_bytes(encode_config(cfg))
    settings = Settings(model_repository=str(tmp_path), grpc_port=0)
    with TestClient(create_app(settings)) as c:
        config = c.get("/v2/models/mlp/config").json()
        kinds = [g["kind"] for g in config["instance_group"]]
        assert "KIND_GPU" in kinds
        device = config["parameters"]["device"]["string_value"]
        assert device in ("cuda", "split")
        body = {"inputs": [{"name": "features", "shape": [4096, 64], "datatype": "FP32",
                            "data": _x(4096).ravel().tolist()}]}  # fmt: skip
        assert c.post("/v2/models/mlp/infer", json=body).status_code == 200
        stats = c.get("/v2/models/mlp/stats").json()["model_stats"][0]
        assert stats["shopserve"]["device"] == device
