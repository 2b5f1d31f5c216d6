"""Intra-op threads: the server's share of the cores unless the config sets them; and CPU models
whose weights every worker maps from one file (server/runtime/weights.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from server.contract.model_config import Optimization
from server.runtime.placement import Placement
from server.runtime.session import OrtModel
from tests.configs import mlp_config


def test_unset_threads_share_the_cores_between_workers_each_keeping_one_for_its_loop():
    assert Placement(workers=1, cores=16).intra_op_threads(None, "m") == 15
    assert Placement(workers=2, cores=16).intra_op_threads(None, "m") == 7
    assert Placement(workers=1, cores=2).intra_op_threads(None, "m") == 1
    assert Placement(workers=2, cores=2).intra_op_threads(None, "m") == 1
    assert Placement(workers=3, cores=2).intra_op_threads(None, "m") == 1


def test_a_configured_thread_count_wins_and_oversubscription_is_named(caplog):
    with caplog.at_level(logging.WARNING, logger="shopserve.runtime"):
        assert Placement(workers=2, cores=4).intra_op_threads(2, "ranker") == 2
        assert not caplog.records
        assert Placement(workers=2, cores=4).intra_op_threads(4, "ranker") == 4
        assert Placement(workers=2, cores=4).intra_op_threads(0, "ranker") == 0  # ORT's: 4 each
    assert len(caplog.records) == 2
    assert "ranker" in caplog.records[0].getMessage()
    assert "8 threads may run at once on 4 cores" in caplog.records[0].getMessage()


def test_the_session_gets_the_thread_count(demo_repo: Path):
    path = demo_repo / "mlp/1/model.onnx"
    unset = OrtModel(path, mlp_config(), "cpu", Placement(workers=2, cores=6))
    assert unset.sessions[0].get_session_options().intra_op_num_threads == 2
    cfg = mlp_config(optimization=Optimization(intra_op_threads=1))
    assert (
        OrtModel(path, cfg, "cpu", Placement(workers=1, cores=4))
        .sessions[0]
        .get_session_options()
        .intra_op_num_threads
        == 1
    )


def test_weights_mapped_from_one_external_file(demo_repo: Path, tmp_path: Path):
    path = demo_repo / "mlp/1/model.onnx"
    plain = OrtModel(path, mlp_config(), "cpu")
    shared = OrtModel(
        path, mlp_config(), "cpu", Placement(workers=2, cores=2, weights_dir=tmp_path)
    )
    [folder] = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert (folder / "model.onnx.data").stat().st_size > 64 * 256 * 4  # the first layer at least
    x = np.random.default_rng(0).standard_normal((7, 64)).astype(np.float32)
    np.testing.assert_allclose(
        shared.run({"features": x})["score"], plain.run({"features": x})["score"], rtol=1e-5
    )
    mtime = (folder / "model.onnx").stat().st_mtime_ns
    OrtModel(path, mlp_config(), "cpu", Placement(workers=2, cores=2, weights_dir=tmp_path))
    assert (folder / "model.onnx").stat().st_mtime_ns == mtime  # made once, then reused
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [folder.name]
