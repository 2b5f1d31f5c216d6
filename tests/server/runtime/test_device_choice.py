"""The device per model (server/runtime/device_choice.py): the pure decision over measured curves,
given here as data (the GPU figures of ../shared/gpu/README.md among them), and what a model
reports on a machine without CUDA, where nothing is measured and nothing changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.contract.model_config import DynamicBatching, InstanceGroup, Optimization
from server.runtime import providers
from server.runtime.device_choice import (
    DeviceChoice,
    choose_device,
    measure_curve,
    pinned,
    shared_choice,
)
from server.runtime.placement import Placement
from server.runtime.session import OrtModel
from tests.configs import mlp_config

US = 1_000  # ns

# the MLP 64-256-128-1 on the H200 box: CPU EP with 16 cores against CUDA with IO binding
# (batch 1 and 65536 from the reference table; the sizes between interpolated by hand)
H200_CPU = {1: 13 * US, 8: 15 * US, 64: 40 * US, 512: 250 * US, 4096: 1_500 * US}
H200_CUDA = {1: 70 * US, 8: 70 * US, 64: 72 * US, 512: 80 * US, 4096: 110 * US}


def test_small_batches_stay_on_the_cpu_and_large_ones_go_to_cuda():
    choice = choose_device(H200_CPU, H200_CUDA)
    assert choice.device == "split"
    # CPU wins up to 64 rows (40 us against CUDA's 72 x 1.1), CUDA from 512 (88 against 250):
    # the curves, linear in between, cross at 152 rows
    assert choice.cuda_from_rows == 152
    assert choice.device_for(1) == choice.device_for(64) == "cpu"
    assert choice.device_for(512) == choice.device_for(100_000) == "cuda"
    assert choice.kinds == ["KIND_CPU", "KIND_GPU"]


def test_the_crossover_is_where_the_linear_curves_cross():
    cpu = {100: 100 * US, 200: 300 * US}
    cuda = {100: 200 * US, 200: 200 * US}  # equal at 150 rows
    assert choose_device(cpu, cuda, margin=0.0).cuda_from_rows == 150
    # with a 10% margin CUDA must beat the CPU by 10%: CPU(x) = 1.1 * 200 us at 160 rows
    assert choose_device(cpu, cuda, margin=0.1).cuda_from_rows == 160


def test_cuda_everywhere_when_it_wins_at_every_size():
    choice = choose_device({1: 900 * US, 64: 9_000 * US}, {1: 1_000, 64: 2_000})
    assert (choice.device, choice.cuda_from_rows) == ("cuda", 1)
    assert choice.kinds == ["KIND_GPU"] and choice.device_for(1) == "cuda"


def test_cpu_everywhere_when_cuda_never_wins_by_the_margin():
    choice = choose_device({1: 10 * US, 1024: 100 * US}, {1: 70 * US, 1024: 95 * US})
    assert (choice.device, choice.cuda_from_rows) == ("cpu", 0)
    assert choice.device_for(1_000_000) == "cpu" and choice.kinds == ["KIND_CPU"]


def test_a_noisy_cuda_win_below_a_cpu_win_does_not_move_the_threshold():
    cpu = {1: 10 * US, 8: 80 * US, 64: 50 * US, 512: 900 * US}
    cuda = {1: 70 * US, 8: 20 * US, 64: 70 * US, 512: 90 * US}  # a fluke at 8
    choice = choose_device(cpu, cuda, margin=0.0)
    assert choice.device == "split" and 64 < choice.cuda_from_rows <= 512
    assert choice.device_for(8) == "cpu"


def test_sizes_the_cpu_was_not_timed_at_go_to_cuda():
    # the CPU curve was cut short (far slower at 256 and 512): 1024 was never run there
    cpu = {1: 10 * US, 256: 2_000 * US, 512: 4_000 * US}
    cuda = {1: 70 * US, 256: 90 * US, 512: 100 * US, 1024: 120 * US}
    choice = choose_device(cpu, cuda)
    assert choice.device == "split" and 1 < choice.cuda_from_rows <= 256
    assert choice.device_for(1024) == "cuda"


def test_no_cuda_timings_means_cpu():
    assert choose_device({1: 1}, {}).device == "cpu"


def test_the_summary_and_parameters_name_the_timings():
    choice = choose_device(H200_CPU, H200_CUDA)
    params = choice.parameters()
    assert params["device"] == "split" and params["cuda_from_rows"] == str(choice.cuda_from_rows)
    assert "CPU below" in params["device_choice"] and "4096: 1.500/0.110" in params["device_choice"]
    assert all(isinstance(v, str) for v in params.values())  # summed stats keep strings as they are
    assert pinned("cpu", "no CUDA driver").parameters() == {
        "device": "cpu",
        "device_choice": "CPU (no CUDA driver)",
    }


def test_measure_curve_stops_the_slower_device_early():
    calls: list[int] = []

    def run(rows: int) -> None:
        calls.append(rows)

    against = {1: 1, 2: 1, 4: 1, 8: 1}  # the other device takes 1 ns: this one is far slower
    out = measure_curve(run, [1, 2, 4, 8], repeats=2, against=against)
    assert sorted(out) == [1, 2]  # two sizes in a row 4x slower: the rest is not run
    assert calls == [1, 1, 1, 2, 2, 2]  # one untimed run, then `repeats` timed ones


def test_the_workers_of_a_run_share_one_measurement(tmp_path: Path):
    made: list[int] = []

    def measure() -> DeviceChoice:
        made.append(1)
        return choose_device(H200_CPU, H200_CUDA)

    first = shared_choice(tmp_path, "k", measure)
    second = shared_choice(tmp_path, "k", measure)
    assert made == [1] and second == first  # read back, int keys and all
    assert shared_choice(tmp_path, "other", measure) == first and made == [1, 1]


# -- on a machine without CUDA ----------------------------------------------------------------------


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "cuda_driver_present", lambda: False)


@pytest.mark.parametrize("setting", ["auto", "cuda", "cpu"])
def test_without_cuda_every_setting_serves_on_the_cpu_unmeasured(
    no_cuda: None, demo_repo: Path, setting: str
):
    model = OrtModel(demo_repo / "mlp/1/model.onnx", mlp_config(), setting)
    assert model.device == "cpu" and model.cuda_sessions == [] and model.choice.cpu_ns == {}
    assert model.choice.device == "cpu" and model.choice.kinds == ["KIND_CPU"]
    assert model.sessions[0].get_providers() == ["CPUExecutionProvider"]
    assert not model.io_binding  # "auto" binds on the GPU only, as before
    reason = "setting device = cpu" if setting == "cpu" else "no CUDA driver"
    assert model.choice.parameters()["device_choice"] == f"CPU ({reason})"


def test_a_config_that_pins_the_cpu_is_never_measured(demo_repo: Path):
    cfg = mlp_config(instance_group=[InstanceGroup(kind="KIND_CPU")])
    model = OrtModel(demo_repo / "mlp/1/model.onnx", cfg, "auto")
    assert model.choice.reason == "instance_group kind KIND_CPU" and not model.choice.cpu_ns


# -- the split's plumbing, with a CPU session standing in for the CUDA one ----------------------


def test_a_split_model_runs_each_batch_on_the_session_of_its_size(
    demo_repo: Path, monkeypatch: pytest.MonkeyPatch
):
    """The CUDA provider cannot load here; `_cuda` hands back CPU sessions under the CUDA name so
    that the measuring and dispatching code runs (the decision itself is tested above; the real
    thing runs on the lent GPU: tests/server/runtime/test_gpu.py)."""
    monkeypatch.setattr(providers, "cuda_driver_present", lambda: True)
    monkeypatch.setattr(OrtModel, "_cuda", lambda self, required: self._cpu())
    split = DeviceChoice("split", 100, "measured: crossover")
    seen: list[tuple[dict, dict]] = []

    def decide(cpu_ns: dict, cuda_ns: dict) -> DeviceChoice:
        seen.append((cpu_ns, cuda_ns))
        return split

    monkeypatch.setattr("server.runtime.session.choose_device", decide)
    cfg = mlp_config(
        max_batch_size=256,
        dynamic_batching=DynamicBatching(preferred_batch_size=[64]),
        optimization=Optimization(io_binding="off"),
    )
    model = OrtModel(demo_repo / "mlp/1/model.onnx", cfg, "auto")
    [(cpu_ns, cuda_ns)] = seen
    assert sorted(cuda_ns) == model.warmup_sizes() == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert set(cpu_ns) <= set(cuda_ns) and all(ns > 0 for ns in cuda_ns.values())
    assert model.choice is split and model.cpu_sessions and model.cuda_sessions
    used: list[str] = []
    for name in ("cpu", "cuda"):
        for s in getattr(model, f"{name}_sessions"):
            real = s.run
            monkeypatch.setattr(s, "run", lambda *a, _r=real, _n=name: used.append(_n) or _r(*a))
    x = np.ones((99, 64), np.float32)
    model.run({"features": x})
    model.run({"features": np.ones((100, 64), np.float32)})
    assert used == ["cpu", "cuda"]


def test_several_workers_measure_once(demo_repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path):
    """With a run directory (several workers), the second worker reads the first one's choice."""
    monkeypatch.setattr(providers, "cuda_driver_present", lambda: True)
    monkeypatch.setattr(OrtModel, "_cuda", lambda self, required: self._cpu())
    calls: list[int] = []
    real = OrtModel._measure

    def counted(self: OrtModel) -> DeviceChoice:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(OrtModel, "_measure", counted)
    cfg = mlp_config(max_batch_size=8, optimization=Optimization(io_binding="off"))
    placement = Placement(workers=2, cores=2, weights_dir=tmp_path)
    a = OrtModel(demo_repo / "mlp/1/model.onnx", cfg, "auto", placement)
    b = OrtModel(demo_repo / "mlp/1/model.onnx", cfg, "auto", placement)
    assert calls == [1] and a.choice == b.choice and a.choice.cuda_ns
