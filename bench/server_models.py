"""The server benchmark's model repository, written into a temp dir at run time.

Two models, each twice (dynamic batching on, and off as `<name>_unbatched`):
- `mlp`: the demo's 64 -> 256 -> 128 -> 1 ReLU MLP (features FP32 [64] -> score FP32 [1]).
- `encoder`: a MiniLM-sized BERT encoder (6 layers, 384 hidden, 12 heads, 1536 ffn), random
  weights, 32 tokens: input_ids INT64 [32] -> embedding FP32 [384] (mean over tokens). Built
  with torch + transformers (the `export` extra); no network, no checkpoint.

Every session gets one intra-op thread: the server is pinned to one core, and so is `direct`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["BenchModel", "build_bench_repository", "encoder_available", "MODELS"]

IR_VERSION = 10  # ONNX Runtime 1.31 refuses the IR 14 that onnx 1.23 writes by default
ENCODER_TOKENS = 32
# Deadlines far beyond any queue the bench builds: a 504 would be a dropped row, not a result.
_TIMEOUT_US = 30_000_000


@dataclass(frozen=True)
class BenchModel:
    name: str
    input_name: str
    v2_datatype: str  # FP32 / INT64
    row_shape: tuple[int, ...]
    max_batch_size: int
    max_queue_delay_us: int
    preferred: tuple[int, ...]

    def example_row(self) -> np.ndarray:
        """One request's input, [1, *row_shape], deterministic."""
        rng = np.random.default_rng(7)
        if self.v2_datatype == "INT64":
            return rng.integers(1, 30000, (1, *self.row_shape), dtype=np.int64)
        return rng.standard_normal((1, *self.row_shape)).astype(np.float32)


MODELS = {
    "mlp": BenchModel("mlp", "features", "FP32", (64,), 1024, 500, (64, 256)),
    # one row costs ~10-15 ms on one core: a 2 ms wait is cheap against that
    "encoder": BenchModel(
        "encoder", "input_ids", "INT64", (ENCODER_TOKENS,), 64, 2000, (16, 32, 64)
    ),
}

_CONFIG = """\
name = "{name}"
platform = "onnxruntime_onnx"
max_batch_size = {max_batch_size}

[[input]]
name = "{input_name}"
data_type = "TYPE_{dtype}"
dims = [{in_dim}]

[[output]]
name = "{output_name}"
data_type = "TYPE_FP32"
dims = [{out_dim}]
{batching}
[[instance_group]]
count = 1
kind = "KIND_CPU"

[optimization]
graph_level = "all"
intra_op_threads = 1
"""

_BATCHING = """
[dynamic_batching]
max_queue_delay_microseconds = {delay}
preferred_batch_size = [{preferred}]

[dynamic_batching.default_queue_policy]
max_queue_size = 4096
default_timeout_microseconds = {timeout}
"""

_OUTPUTS = {"mlp": ("score", 1), "encoder": ("embedding", 384)}


def encoder_available() -> str | None:
    """None when the encoder can be built here, else the reason it cannot."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        return f"encoder needs torch and transformers (pip install -e '.[export]'): {exc}"
    return None


def _write_encoder(path: Path) -> None:
    import onnx
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        attn_implementation="eager",  # SDPA exports a graph ORT fuses less of (DESIGN.md)
    )
    bert = BertModel(cfg, add_pooling_layer=False).eval()

    class MeanEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=input_ids).last_hidden_state.mean(dim=1)

    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.ones((2, ENCODER_TOKENS), dtype=torch.int64)
    with torch.no_grad():
        torch.onnx.export(
            MeanEncoder().eval(),
            (example,),
            str(path),
            input_names=["input_ids"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter needs no onnxscript
        )
    model = onnx.load(str(path))
    model.ir_version = IR_VERSION
    onnx.save(model, str(path))


def _write_mlp(path: Path) -> None:
    from export.demo import mlp_weights, write_mlp

    write_mlp(path, mlp_weights())


def build_bench_repository(out: Path, models: list[str]) -> Path:
    """Write `models` (keys of MODELS), each batched and unbatched, into `out`."""
    out = Path(out)
    for key in models:
        m = MODELS[key]
        onnx_path = out / m.name / "1" / "model.onnx"
        (_write_mlp if key == "mlp" else _write_encoder)(onnx_path)
        out_name, out_dim = _OUTPUTS[key]
        for name, batching in (
            (m.name, True),
            (f"{m.name}_unbatched", False),
        ):
            if name != m.name:
                (out / name / "1").mkdir(parents=True, exist_ok=True)
                (out / name / "1" / "model.onnx").write_bytes(onnx_path.read_bytes())
            text = _CONFIG.format(
                name=name,
                max_batch_size=m.max_batch_size,
                input_name=m.input_name,
                dtype=m.v2_datatype,
                in_dim=m.row_shape[0],
                output_name=out_name,
                out_dim=out_dim,
                batching=_BATCHING.format(
                    delay=m.max_queue_delay_us,
                    preferred=", ".join(map(str, m.preferred)),
                    timeout=_TIMEOUT_US,
                )
                if batching
                else "",
            )
            (out / name / "config.toml").write_text(text)
    return out
