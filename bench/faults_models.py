"""The demo repository of `shopserve bench faults` and tests/e2e/test_chaos.py: the demo models
plus `slow`, a chain of MatMuls calibrated to a target run time."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

IR_VERSION = 10  # ONNX Runtime 1.31 reads at most IR 13; onnx 1.23 writes 14 by default
OPSET = 17
CLIENT_TIMEOUT_S = 60.0
POISON_ID = 5000  # bagofwords has 1000 ids and declares no bounds: its Gather fails on this


# -- models -----------------------------------------------------------------------------------------


def _slow_graph(matmuls: int, size: int):
    """x FP32 [1, 1] -> y FP32 [1, 1] through `matmuls` chained [size x size] MatMuls (the
    chain depends on x, so nothing is folded at load)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    a = (rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32)
    inits = [numpy_helper.from_array(a, "a"), numpy_helper.from_array(np.float32(0), "zero")]
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Mul", ["a", "s"], ["m0"]),
    ]
    for i in range(matmuls):
        nodes.append(helper.make_node("MatMul", [f"m{i}", "a"], [f"m{i + 1}"]))
    nodes += [
        helper.make_node("ReduceMean", [f"m{matmuls}"], ["r"], keepdims=0),
        helper.make_node("Mul", ["x", "zero"], ["x0"]),
        helper.make_node("Add", ["x0", "r"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def _run_ms(model) -> float:
    """Median time of one run on one intra-op thread, in ms."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = {"x": np.ones((1, 1), np.float32)}
    sess.run(None, x)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        sess.run(None, x)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def write_slow_model(folder: Path, target_ms: float, size: int = 256) -> float:
    """A model `folder.name` that takes about `target_ms` per request on this machine (one
    intra-op thread, max_batch_size 1, no dynamic batching: one request at a time). Returns the
    run time measured for the chain chosen."""
    import onnx

    from server.contract.model_config import (
        InstanceGroup,
        ModelConfig,
        ModelWarmup,
        Optimization,
        TensorConfig,
        encode_config,
    )

    per = max(_run_ms(_slow_graph(8, size)) / 8, 1e-3)
    matmuls = int(min(2000, max(1, round(target_ms / per))))
    model = _slow_graph(matmuls, size)
    measured = _run_ms(model)
    (folder / "1").mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "1" / "model.onnx"))
    config = ModelConfig(
        name=folder.name,
        max_batch_size=1,
        input=[TensorConfig(name="x", data_type="TYPE_FP32", dims=[1])],
        output=[TensorConfig(name="y", data_type="TYPE_FP32", dims=[1])],
        instance_group=[InstanceGroup(count=1, kind="KIND_CPU")],
        optimization=Optimization(graph_level="basic", intra_op_threads=1),
        model_warmup=ModelWarmup(batch_sizes=[1]),
    )
    (folder / "config.toml").write_bytes(encode_config(config))
    return measured


def build_fault_repository(out: Path, slow_ms: float | None = None) -> Path:
    """The demo repository with bagofwords batching over a 50 ms window (a poisoned request
    shares its batch with the good ones) and, given `slow_ms`, a model `slow`."""
    import msgspec

    from export.demo import build_demo_repository, demo_configs
    from server.contract.model_config import DynamicBatching, encode_config

    build_demo_repository(out)
    cfg = demo_configs()["bagofwords"]
    windowed = msgspec.structs.replace(
        cfg, dynamic_batching=DynamicBatching(max_queue_delay_microseconds=50_000)
    )
    (out / "bagofwords" / "config.toml").write_bytes(encode_config(windowed))
    if slow_ms is not None:
        write_slow_model(out / "slow", slow_ms)
    return out
