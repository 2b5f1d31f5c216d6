"""`/config` and `/stats` say where a model runs: the instance groups as served (KIND_AUTO
resolved, as Triton does) and the device choice among the parameters. Here, without CUDA, every
model is on the CPU, unmeasured; tests/server/runtime/test_gpu.py checks the same on a GPU."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from server.app import create_app
from server.settings import Settings


def test_config_and_stats_name_the_device(demo_repo: Path) -> None:
    settings = Settings(model_repository=str(demo_repo), device="cpu", load_models=["mlp"])
    with TestClient(create_app(settings)) as c:
        for path in ("/v2/models/mlp/config", "/v2/models/mlp/versions/1/config"):
            config = c.get(path).json()
            assert config["instance_group"] == [{"name": "mlp_0", "count": 1, "kind": "KIND_CPU"}]
            assert config["parameters"]["device"] == {"string_value": "cpu"}
            assert config["parameters"]["device_choice"] == {
                "string_value": "CPU (setting device = cpu)"
            }
        stats = c.get("/v2/models/mlp/stats").json()["model_stats"][0]["shopserve"]
        assert stats["device"] == "cpu" and stats["device_choice"].startswith("CPU")
