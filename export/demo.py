"""A small model repository built with `onnx.helper`: no training, no torch, seconds to build.

Used by the test suite, the README examples and the server benchmark. Models:
- `mlp`: features FP32 [64] -> score FP32 [1], a 64-256-128-1 ReLU MLP, dynamic batching on.
- `mlp_unbatched`: the same weights with batching off (the benchmark's `unbatched` variant).
- `simple`: Triton's classic add/sub example in INT64: INPUT0, INPUT1 [16] -> OUTPUT0 = sum,
  OUTPUT1 = difference.
- `bagofwords`: token ids INT64 [-1] (pad 0) -> logits FP32 [3]: a masked mean of embeddings
  and a linear layer; exercises padding of variable-length inputs.
- `identity_bytes`: BYTES [1] -> BYTES [1] (ONNX Identity over strings).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from server.contract.model_config import (
    DynamicBatching,
    InstanceGroup,
    ModelConfig,
    ModelWarmup,
    Optimization,
    QueuePolicy,
    TensorConfig,
    encode_config,
)

__all__ = ["build_demo_repository", "demo_configs", "mlp_weights", "write_mlp"]

IR_VERSION = 10  # onnx 1.23 writes IR 14 by default; ONNX Runtime 1.31 reads at most 13
OPSET = 17


def _save(model, path: Path) -> None:
    import onnx

    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def mlp_weights(seed: int = 0, sizes: tuple[int, ...] = (64, 256, 128, 1)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        out.append((rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32))
        out.append((rng.standard_normal(fan_out) * 0.01).astype(np.float32))
    return out


def write_mlp(path: Path, weights: list[np.ndarray]) -> None:
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    x = "features"
    n_layers = len(weights) // 2
    for i in range(n_layers):
        w, b = weights[2 * i], weights[2 * i + 1]
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        out = "score" if i == n_layers - 1 else f"h{i}"
        pre = out if i == n_layers - 1 else f"z{i}"
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [pre]))
        if i != n_layers - 1:
            nodes.append(helper.make_node("Relu", [pre], [out]))
        x = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [
            helper.make_tensor_value_info(
                "features", TensorProto.FLOAT, ["batch", weights[0].shape[0]]
            )
        ],
        [
            helper.make_tensor_value_info(
                "score", TensorProto.FLOAT, ["batch", weights[-1].shape[0]]
            )
        ],
        inits,
    )
    _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path)


def _write_simple(path: Path) -> None:
    from onnx import TensorProto, helper

    vi = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", 16])
        for n in ("INPUT0", "INPUT1")
    ]
    vo = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", 16])
        for n in ("OUTPUT0", "OUTPUT1")
    ]
    nodes = [
        helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
        helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"]),
    ]
    graph = helper.make_graph(nodes, "simple", vi, vo)
    _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path)


def _write_bagofwords(path: Path, vocab: int = 1000, dim: int = 32, n_classes: int = 3) -> None:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    emb = rng.standard_normal((vocab, dim)).astype(np.float32)
    emb[0] = 0.0  # the pad id contributes nothing
    w = (rng.standard_normal((dim, n_classes)) / np.sqrt(dim)).astype(np.float32)
    b = np.zeros(n_classes, np.float32)
    inits = [
        numpy_helper.from_array(emb, "emb"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(b, "b"),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["e"]),  # [b, t, d]
        helper.make_node("ReduceSum", ["e", "axis1"], ["s"], keepdims=0),  # [b, d]
        helper.make_node("Greater", ["input_ids", "zero"], ["m"]),
        helper.make_node("Cast", ["m"], ["mf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["mf", "axis1"], ["n"], keepdims=1),  # [b, 1]
        helper.make_node("Max", ["n", "one"], ["n1"]),
        helper.make_node("Div", ["s", "n1"], ["mean"]),
        helper.make_node("Gemm", ["mean", "w", "b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "bagofwords",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_classes])],
        inits,
    )
    _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path)


def _write_identity_bytes(path: Path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["echo"])],
        "identity_bytes",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch", 1])],
        [helper.make_tensor_value_info("echo", TensorProto.STRING, ["batch", 1])],
    )
    _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path)


def _mlp_config(name: str, batched: bool) -> ModelConfig:
    return ModelConfig(
        name=name,
        max_batch_size=1024,
        input=[TensorConfig(name="features", data_type="TYPE_FP32", dims=[64])],
        output=[TensorConfig(name="score", data_type="TYPE_FP32", dims=[1])],
        dynamic_batching=DynamicBatching(
            max_queue_delay_microseconds=500,
            preferred_batch_size=[64, 256],
            default_queue_policy=QueuePolicy(
                max_queue_size=4096,
                default_timeout_microseconds=1_000_000,
                allow_timeout_override=True,
            ),
        )
        if batched
        else None,
        instance_group=[InstanceGroup(count=1, kind="KIND_AUTO")],
        optimization=Optimization(graph_level="all", intra_op_threads=1),
    )


def _simple_config() -> ModelConfig:
    def int64_16(name: str) -> TensorConfig:
        return TensorConfig(name=name, data_type="TYPE_INT64", dims=[16])

    return ModelConfig(
        name="simple",
        max_batch_size=64,
        input=[int64_16("INPUT0"), int64_16("INPUT1")],
        output=[int64_16("OUTPUT0"), int64_16("OUTPUT1")],
        dynamic_batching=DynamicBatching(max_queue_delay_microseconds=100),
    )


def _bagofwords_config() -> ModelConfig:
    return ModelConfig(
        name="bagofwords",
        max_batch_size=64,
        input=[TensorConfig(name="input_ids", data_type="TYPE_INT64", dims=[-1], pad_value=0)],
        output=[TensorConfig(name="logits", data_type="TYPE_FP32", dims=[3])],
        dynamic_batching=DynamicBatching(
            max_queue_delay_microseconds=200, preferred_batch_size=[16]
        ),
        model_warmup=ModelWarmup(dynamic_dim=32),
    )


def _identity_bytes_config() -> ModelConfig:
    return ModelConfig(
        name="identity_bytes",
        max_batch_size=8,
        input=[TensorConfig(name="text", data_type="TYPE_STRING", dims=[1])],
        output=[TensorConfig(name="echo", data_type="TYPE_STRING", dims=[1])],
    )


def demo_configs() -> dict[str, ModelConfig]:
    """Every demo model's `config.toml`, by folder name."""
    return {
        "mlp": _mlp_config("mlp", batched=True),
        "mlp_unbatched": _mlp_config("mlp_unbatched", batched=False),
        "simple": _simple_config(),
        "bagofwords": _bagofwords_config(),
        "identity_bytes": _identity_bytes_config(),
    }


def _write_demo_mlp(path: Path) -> None:
    write_mlp(path, mlp_weights())


_WRITERS = {
    "mlp": _write_demo_mlp,
    "mlp_unbatched": _write_demo_mlp,  # the same weights, batching off
    "simple": _write_simple,
    "bagofwords": _write_bagofwords,
    "identity_bytes": _write_identity_bytes,
}


def build_demo_repository(out: Path) -> Path:
    """Write the demo repository into `out` (created if missing) and return it."""
    out = Path(out)
    for name, config in demo_configs().items():
        _WRITERS[name](out / name / "1" / "model.onnx")
        (out / name / "config.toml").write_bytes(encode_config(config))
    return out
