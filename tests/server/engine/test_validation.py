"""Inputs are checked against the model's config before they are queued; every failure is a
BadRequest naming the input (`where` + name), so one bad request never reaches a batch."""

from __future__ import annotations

import numpy as np
import pytest

from server.contract.model_config import ModelConfig
from server.engine.validation import check_inputs
from server.errors import BadRequest
from tests.configs import tensor

CONFIG = ModelConfig(
    name="m",
    max_batch_size=8,
    input=[
        tensor("ids", [-1], "TYPE_INT64", min_value=0, max_value=99, max_dims=[16]),
        tensor("x", [3]),
    ],
    output=[tensor("y", [1])],
)
UNBATCHED = ModelConfig(name="u", input=[tensor("x", [2, 3])])


def _ok(rows: int = 2, width: int = 4) -> dict[str, np.ndarray]:
    return {
        "ids": np.arange(rows * width, dtype=np.int64).reshape(rows, width) % 100,
        "x": np.zeros((rows, 3), np.float32),
    }


def test_good_inputs_give_their_rows():
    assert check_inputs(CONFIG, _ok(2)) == 2
    assert check_inputs(CONFIG, _ok(8, 16)) == 8
    assert check_inputs(UNBATCHED, {"x": np.zeros((2, 3), np.float32)}) == 1
    padded = _ok(1)
    padded["ids"][0, -1] = 0  # the pad value is always allowed
    assert check_inputs(CONFIG, padded) == 1


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        ({"extra": np.zeros((2, 1), np.float32)}, ["query: unexpected input(s) ['extra']"]),
        ({"x": None}, ["query: missing input(s) ['x']"]),
        ({"x": np.zeros((2, 3), np.float64)}, ["query.x: datatype FP64", "FP32"]),
        ({"x": np.zeros((2, 4), np.float32)}, ["query.x: shape [2, 4]", "[-1, 3]"]),
        ({"x": np.zeros((2, 3, 1), np.float32)}, ["query.x: shape [2, 3, 1]"]),
        ({"x": np.zeros((3, 3), np.float32)}, ["query.x: batch size 3 differs"]),
        (
            {"ids": np.zeros((9, 2), np.int64), "x": np.zeros((9, 3), np.float32)},
            ["batch size 9 exceeds max_batch_size 8"],
        ),
        ({"ids": np.zeros((2, 0), np.int64)}, ["query.ids: shape [2, 0] has an empty dimension"]),
        ({"ids": np.zeros((2, 17), np.int64)}, ["query.ids: dynamic dim of 17", "maximum of 16"]),
        ({"ids": np.full((2, 2), 100, np.int64)}, ["query.ids: values must lie in [0, 99]"]),
        ({"ids": np.full((2, 2), -3, np.int64)}, ["query.ids: values must lie in [0, 99]"]),
    ],
)
def test_bad_inputs_name_the_input(change, needles):
    inputs = {**_ok(2), **change}
    inputs = {k: v for k, v in inputs.items() if v is not None}
    with pytest.raises(BadRequest) as info:
        check_inputs(CONFIG, inputs, "query")
    for needle in needles:
        assert needle in info.value.message, info.value.message


def test_unbatched_shapes_are_exact():
    with pytest.raises(BadRequest, match=r"inputs.x: shape \[1, 2, 3\] does not match"):
        check_inputs(UNBATCHED, {"x": np.zeros((1, 2, 3), np.float32)})


def test_dynamic_dims_without_a_bound_get_the_global_limit():
    cfg = ModelConfig(name="t", max_batch_size=4, input=[tensor("t", [-1], "TYPE_INT64")])
    assert check_inputs(cfg, {"t": np.zeros((1, 64), np.int64)}, max_dynamic_dim=64) == 1
    with pytest.raises(BadRequest, match="dynamic dim of 65 exceeds the model's maximum of 64"):
        check_inputs(cfg, {"t": np.zeros((1, 65), np.int64)}, max_dynamic_dim=64)
