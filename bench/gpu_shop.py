"""A `/v1/search` and `/v1/recommend` repository for the GPU check, from a synthetic catalogue
(`shopserve export synthetic`): no data set, no training, minutes at most.

    python -m bench.gpu_shop --synthetic synth.npz --out REPO [--layers 6 --hidden 384 --heads 12]
        [--fp16] [--json FILE]

- `search_encoder`: a MiniLM-sized BERT (random weights; 6 x 384, 12 heads by default), token ids
  INT64 [-1] -> the masked mean of its last hidden state, FP32 [hidden]; with `--fp16` its fp16
  variant beside it (`model_fp16.onnx`, what CUDA sessions load), compared with the fp32 model.
- `query_encoder`: history item rows INT64 [-1] -> the mean of their embeddings times a matrix,
  FP32 [dim] (onnx.helper: Gather, ReduceMean, MatMul), the shape of the recommender's encoder
  without its LSTM.
- `search/` and `recommend/` pipelines over the catalogue (ids `P<row>`, titles, prices), the
  product embeddings (the catalogue's, at the encoder's width) and a WordLevel tokenizer over the
  titles' words; recommend has no ranker (its feature tables need the real data).
Every model is KIND_AUTO: where CUDA loads, the server measures both devices (docs/gpu.md).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from server.contract.model_config import (
    DynamicBatching,
    ModelConfig,
    QueuePolicy,
    TensorConfig,
    encode_config,
)
from server.contract.pipelines import RecommendSpec, SearchSpec, encode_pipeline_spec

__all__ = ["build_gpu_shop", "main"]

IR_VERSION = 10  # ONNX Runtime 1.31 reads IR <= 13; onnx 1.23 writes 14
MAX_TOKENS = 32
MAX_HISTORY = 50
VOCAB_SIZE = 30522  # BERT's: token ids are bounded by it in the config
_TIMEOUT_US = 30_000_000  # the bench's deadlines are the pipelines' budgets, not the queue's


def _batching(delay_us: int, preferred: list[int]) -> DynamicBatching:
    return DynamicBatching(
        max_queue_delay_microseconds=delay_us,
        preferred_batch_size=preferred,
        default_queue_policy=QueuePolicy(
            max_queue_size=8192, default_timeout_microseconds=_TIMEOUT_US
        ),
    )


def _write_model(repo: Path, config: ModelConfig) -> Path:
    folder = repo / config.name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_bytes(encode_config(config))
    return folder / "1" / "model.onnx"


def _export_encoder(path: Path, layers: int, hidden: int, heads: int) -> None:
    import onnx
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=512,
        attn_implementation="eager",  # SDPA exports a graph ORT fuses less of (DESIGN.md)
    )
    bert = BertModel(cfg, add_pooling_layer=False).eval()

    class MeanEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            mask = (input_ids != 0).to(torch.float32)
            hidden_states = self.bert(input_ids=input_ids, attention_mask=mask).last_hidden_state
            summed = (hidden_states * mask.unsqueeze(-1)).sum(dim=1)
            return summed / mask.sum(dim=1, keepdim=True).clamp(min=1.0)

    example = torch.ones((2, 8), dtype=torch.int64)
    with torch.no_grad():
        torch.onnx.export(
            MeanEncoder().eval(),
            (example,),
            str(path),
            input_names=["input_ids"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter needs no onnxscript
        )
    model = onnx.load(str(path))
    model.ir_version = IR_VERSION
    onnx.save(model, str(path))


def _check_fp16(fp32: Path, fp16: Path) -> dict:
    """The fp16 variant against the fp32 model on a few padded batches (CPU provider)."""
    from export.onnx_tools import cosine_rows, session

    rng = np.random.default_rng(0)
    ids = rng.integers(1, VOCAB_SIZE, (16, MAX_TOKENS)).astype(np.int64)
    ids[8:, 12:] = 0  # padded rows, as the batcher pads
    try:
        a = session(fp32).run(None, {"input_ids": ids})[0]
        b = session(fp16).run(None, {"input_ids": ids})[0]
    except Exception as exc:  # an op without an fp16 CPU kernel: checked on the GPU only
        return {"checked_on": "not on CPU", "error": f"{type(exc).__name__}: {exc}"[:300]}
    cos = cosine_rows(a, b)
    return {
        "checked_on": "CPUExecutionProvider",
        "min_cosine": round(float(cos.min()), 5),
        "max_abs_diff": round(float(np.abs(a - b).max()), 5),
    }


def _search_encoder(repo: Path, layers: int, hidden: int, heads: int, fp16: bool) -> dict:
    config = ModelConfig(
        name="search_encoder",
        max_batch_size=256,
        input=[
            TensorConfig(
                name="input_ids",
                data_type="TYPE_INT64",
                dims=[-1],
                min_value=0,
                max_value=VOCAB_SIZE - 1,
                max_dims=[MAX_TOKENS],
            )  # fmt: skip
        ],
        output=[TensorConfig(name="embedding", data_type="TYPE_FP32", dims=[hidden])],
        dynamic_batching=_batching(500, [16, 64, 128]),
    )
    path = _write_model(repo, config)
    _export_encoder(path, layers, hidden, heads)
    out: dict = {"layers": layers, "hidden": hidden, "heads": heads}
    if fp16:
        from export.onnx_tools import convert_fp16

        half = path.with_name("model_fp16.onnx")  # server/runtime/session.py::fp16_variant
        convert_fp16(path, half)
        out["fp16"] = _check_fp16(path, half)
    return out


def _query_encoder(repo: Path, items: np.ndarray) -> None:
    from onnx import TensorProto, helper, numpy_helper

    n, dim = items.shape
    w = np.eye(dim, dtype=np.float32) + 0.01 * np.random.default_rng(1).standard_normal(
        (dim, dim)
    ).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "history"], ["rows"], axis=0),
            helper.make_node("ReduceMean", ["rows"], ["mean"], axes=[1], keepdims=0),
            helper.make_node("MatMul", ["mean", "w"], ["user_vector"]),
        ],
        "query_encoder",
        [helper.make_tensor_value_info("history", TensorProto.INT64, ["batch", "items"])],
        [helper.make_tensor_value_info("user_vector", TensorProto.FLOAT, ["batch", dim])],
        [numpy_helper.from_array(items, "table"), numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = IR_VERSION
    config = ModelConfig(
        name="query_encoder",
        max_batch_size=256,
        input=[
            TensorConfig(
                name="history",
                data_type="TYPE_INT64",
                dims=[-1],
                min_value=0,
                max_value=n - 1,
                max_dims=[MAX_HISTORY],
            )  # fmt: skip
        ],
        output=[TensorConfig(name="user_vector", data_type="TYPE_FP32", dims=[dim])],
        dynamic_batching=_batching(300, [16, 64, 128]),
    )
    import onnx

    onnx.save(model, str(_write_model(repo, config)))


def _tokenizer(path: Path, titles: list[str]) -> None:
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    words = sorted({w for t in titles[:10_000] for w in t.lower().split() if not w.isdigit()})
    vocab = {"[PAD]": 0, "[UNK]": 1} | {w: i + 2 for i, w in enumerate(words)}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))


def _catalogue(folder: Path, shop: dict, embeddings: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n = len(embeddings)
    (folder / "item_ids.json").write_text(json.dumps([f"P{i}" for i in range(n)]))
    (folder / "item_titles.json").write_text(json.dumps([str(t) for t in shop["item_titles"]]))
    np.save(folder / "item_prices.npy", shop["item_price"].astype(np.float32))
    np.save(folder / "popularity.npy", shop["item_popularity"].astype(np.float32))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def build_gpu_shop(
    synthetic: Path, out: Path, *, layers: int, hidden: int, heads: int, fp16: bool, rec_dim: int
) -> dict:
    """Write the repository; return what was built (sizes, the fp16 check)."""
    shop = dict(np.load(synthetic))
    emb = shop["item_embeddings"].astype(np.float32)
    n, dim = emb.shape
    # the catalogue's embeddings at the encoders' widths (tiled when the catalogue's are narrower)
    product = _unit(np.tile(emb, (1, -(-hidden // dim)))[:, :hidden])
    items = _unit(np.tile(emb, (1, -(-rec_dim // dim)))[:, :rec_dim])
    out.mkdir(parents=True, exist_ok=True)
    built = {"items": n, "search_encoder": _search_encoder(out, layers, hidden, heads, fp16)}
    _query_encoder(out, items)
    search = out / "search" / "1"
    _catalogue(search, shop, product)
    np.save(search / "product_embeddings.npy", product)
    _tokenizer(search / "tokenizer.json", [str(t) for t in shop["item_titles"]])
    spec = SearchSpec(encoder="search_encoder", max_tokens=MAX_TOKENS)
    (out / "search" / "pipeline.toml").write_bytes(encode_pipeline_spec("search", spec))
    rec = out / "recommend" / "1"
    _catalogue(rec, shop, items)
    np.save(rec / "item_embeddings.npy", items)
    rspec = RecommendSpec(query_encoder="query_encoder", max_history=MAX_HISTORY)
    (out / "recommend" / "pipeline.toml").write_bytes(encode_pipeline_spec("recommend", rspec))
    _warm_kernels(product, items)
    return built | {"recommend_dim": rec_dim}


def _warm_kernels(product: np.ndarray, items: np.ndarray) -> None:
    """Compile the retrieval kernel once into Numba's on-disk cache, so that N workers starting
    together load it instead of each compiling it."""
    from kernels import ItemMatrix, topk_inner_product

    for emb in (product, items):
        topk_inner_product(emb[:2], ItemMatrix.from_array(emb), 10, n_threads=1)


def request_bodies(repo: Path) -> dict[str, dict]:
    """One `/v1/search` and one `/v1/recommend` body that this repository answers."""
    titles = json.loads((repo / "search" / "1" / "item_titles.json").read_text())
    words = re.sub(r"\d+", "", titles[0]).split()
    n = len(titles)
    history = [f"P{(i * 7919) % n}" for i in range(20)]
    return {
        "search": {"query": " ".join(words[:3]) or "red heart", "k": 10},
        "recommend": {"history": history, "k": 10},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_shop", description=__doc__.split("\n")[0])
    p.add_argument("--synthetic", type=Path, required=True, help="the .npz of export synthetic")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--hidden", type=int, default=384)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--rec-dim", type=int, default=64)
    p.add_argument("--fp16", action="store_true", help="also write the encoder's fp16 variant")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    t0 = time.monotonic()
    built = build_gpu_shop(
        a.synthetic, a.out, layers=a.layers, hidden=a.hidden, heads=a.heads, fp16=a.fp16,
        rec_dim=a.rec_dim,
    )  # fmt: skip
    built["build_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(built), file=sys.stderr)
    if a.json:
        a.json.write_text(json.dumps(built, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
