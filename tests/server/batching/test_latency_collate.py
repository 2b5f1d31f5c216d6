import numpy as np

from server.batching.collate import collate, split_outputs
from server.batching.latency import LatencyModel


def test_latency_model_interpolates_and_extrapolates():
    m = LatencyModel()
    assert m.expected_ns(8) == 0.0
    m.observe(1, 100)
    m.observe(9, 900)
    assert m.expected_ns(1) == 100
    assert m.expected_ns(5) == 500
    assert m.expected_ns(17) == 1700
    m.observe(1, 200)  # EWMA moves toward new measurements
    assert 100 < m.expected_ns(1) < 200


def test_one_preempted_run_moves_the_latency_model_a_little_a_lasting_slowdown_fully():
    m = LatencyModel(alpha=0.2, clip=3.0)
    m.observe(8, 20_000)
    m.observe(8, 5_000_000)  # one run preempted for 5 ms on a busy core
    assert m.expected_ns(8) == 20_000 + 0.2 * (60_000 - 20_000)  # clipped at 3x: +40%
    for _ in range(40):  # the model really became 10x slower
        m.observe(8, 200_000)
    assert abs(m.expected_ns(8) - 200_000) < 2_000


def test_collate_pads_and_split_slices_back():
    a = {"ids": np.array([[1, 2]]), "w": np.ones((1, 3), np.float32)}
    b = {"ids": np.array([[3, 4, 5, 6], [7, 0, 0, 0]]), "w": np.zeros((2, 3), np.float32)}
    batch, padded = collate([a, b], {"ids": 0})
    assert batch["ids"].tolist() == [[1, 2, 0, 0], [3, 4, 5, 6], [7, 0, 0, 0]]
    assert padded == {"ids": (4,)}
    outputs = {"tok": batch["ids"] * 10, "pooled": np.arange(3)[:, None]}
    parts = split_outputs(outputs, [a, b], padded, {"tok": (0,)})
    assert parts[0]["tok"].tolist() == [[10, 20]]
    assert parts[1]["tok"].shape == (2, 4)
    assert parts[1]["pooled"].ravel().tolist() == [1, 2]
