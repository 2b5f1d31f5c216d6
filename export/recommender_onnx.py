"""The query encoder in ONNX: export, the numeric check, int8, evaluation and timing.

Every choice here is made on validation: the int8 mode, the static mode's calibration histories
(validation histories: a customer's training events, never a validation or test target) and,
in `export.recommender`, the served variant. Test histories are only scored, for the card.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from export import onnx_tools
from export.card import Row
from export.recommender_data import SeqSplit, encode_histories
from export.recommender_train import vector_metrics
from export.specs import OnnxSpec, TensorSpec

__all__ = [
    "HISTORY",
    "QUERY_ENCODER",
    "USER_VECTOR",
    "Variant",
    "calibration_feeds",
    "check_encoder",
    "choose_int8",
    "evaluate",
    "export_encoder",
    "latency",
    "onnx_row",
    "paired_speedups",
    "quantize",
    "served_spec",
]

HISTORY = TensorSpec("history", "TYPE_INT64", (-1,), pad_value=-1)  # item indices, newest last
USER_VECTOR = TensorSpec("user_vector", "TYPE_FP32", (64,))  # the full build's width
QUERY_ENCODER = OnnxSpec(
    name="query_encoder",
    inputs=(HISTORY,),
    outputs=(USER_VECTOR,),
    max_batch_size=256,
    preferred_batch_size=(16, 64),
    warmup_dynamic_dim=50,
    atol=1e-3,
)
LATENCY_BATCHES = (1, 64)
INT8_MODES = ("dynamic", "static")


def served_spec(width: int, max_len: int, n_items: int) -> OnnxSpec:
    """`QUERY_ENCODER` at the trained width, warmed up at the model's history length, with the
    bounds the server checks before queueing: item indices in the catalogue, at most `max_len`."""
    spec = replace(QUERY_ENCODER, warmup_dynamic_dim=max_len)
    history = replace(HISTORY, min_value=0, max_value=n_items - 1, max_dims=(max_len,))
    return spec.with_tensor(replace(USER_VECTOR, dims=(width,))).with_tensor(history)


@dataclass
class Variant:
    """An exported ONNX file with its session and its validation and test metrics."""

    path: Path
    sess: object
    valid: dict[str, float]
    test: dict[str, float]


def _users(sess, hists: list[np.ndarray], max_len: int) -> np.ndarray:
    return onnx_tools.run_session(sess, {HISTORY.name: encode_histories(hists, max_len)})[0]


def evaluate(path: Path, item_emb: np.ndarray, split: SeqSplit, max_len: int) -> Variant:
    """The file's HR@10 / NDCG@10 on `split`'s validation and test queries."""
    sess = onnx_tools.session(path)
    v = vector_metrics(_users(sess, split.valid_hist, max_len), item_emb, split.valid_target)
    t = vector_metrics(_users(sess, split.test_hist, max_len), item_emb, split.test_target)
    return Variant(path, sess, v, t)


def latency(sess, max_len: int, n_items: int, runs: int) -> dict[str, float]:
    """Latency on random histories of the model's full history length."""
    rng = np.random.default_rng(0)
    feeds = {b: _random_histories(rng, b, max_len, n_items) for b in LATENCY_BATCHES}
    return onnx_tools.latency_by_batch(sess, feeds, runs)


def _random_histories(rng, b: int, max_len: int, n_items: int) -> dict[str, np.ndarray]:
    """The timing feed: `b` random histories of `max_len` items."""
    return {HISTORY.name: rng.integers(0, n_items, (b, max_len)).astype(np.int64)}


def paired_speedups(
    teacher: Variant, t_len: int, students: dict[str, Variant], s_len: int, n_items: int, b: int
) -> dict[str, dict[str, float]]:
    """Each student variant against the teacher at batch `b`, timed in interleaved rounds
    (`onnx_tools.paired_speedup`), each on random histories of its own length."""
    rng = np.random.default_rng(0)
    tf, sf = (_random_histories(rng, b, n, n_items) for n in (t_len, s_len))
    slow = partial(teacher.sess.run, None, tf)
    return {
        v: onnx_tools.paired_speedup(slow, partial(x.sess.run, None, sf))
        for v, x in students.items()
    }


def export_encoder(spec: OnnxSpec, model, split: SeqSplit, path: Path) -> Path:
    """`QueryEncoder(model)` -> ONNX at `path` (example: the first 8 validation histories)."""
    import torch

    from export.seqmodels import QueryEncoder

    hist = torch.tensor(encode_histories(split.valid_hist[:8], model.max_len))
    return spec.export(QueryEncoder(model), (hist,), path)


def check_encoder(spec: OnnxSpec, model, split: SeqSplit, path: Path):
    """The ONNX user vectors against torch's on every validation history."""
    import torch

    from export.seqmodels import QueryEncoder

    x = encode_histories(split.valid_hist, model.max_len)
    with torch.no_grad():
        ref = QueryEncoder(model)(torch.tensor(x)).numpy()
    got = onnx_tools.run_session(onnx_tools.session(path), {HISTORY.name: x})[0]
    check = spec.check([ref], [got])
    if not check.passed:
        raise RuntimeError(f"{spec.name}: ONNX output differs from torch: {check}")
    return check


def calibration_feeds(split: SeqSplit, max_len: int, n: int = 256) -> list[dict]:
    """Static int8's calibration batches: the first `n` VALIDATION histories (training events
    only; no validation or test target is in them)."""
    x = encode_histories(split.valid_hist[:n], max_len)
    return [{HISTORY.name: x[i : i + 32]} for i in range(0, len(x), 32)]


def choose_int8(tried: dict[str, Variant], target: float) -> str:
    """The first mode (in `INT8_MODES` order) whose VALIDATION NDCG reaches `target`, else the
    best on validation. Test metrics are not read."""
    for mode in INT8_MODES:
        if mode in tried and tried[mode].valid["ndcg@10"] >= target:
            return mode
    return max(tried, key=lambda k: tried[k].valid["ndcg@10"])


def quantize(
    fp32: Variant, work: Path, item_emb: np.ndarray, split: SeqSplit, max_len: int
) -> tuple[str, dict[str, Variant]]:
    """int8: dynamic per-channel first; static (calibrated on validation histories) if dynamic
    keeps < 99% of the fp32 student's validation NDCG. Returns the mode chosen and every mode
    tried."""
    target = 0.99 * fp32.valid["ndcg@10"]
    tried: dict[str, Variant] = {}
    for mode in INT8_MODES:
        path = work / f"student-int8-{mode}.onnx"
        if mode == "dynamic":
            onnx_tools.quantize_dynamic_int8(fp32.path, path)
        else:
            onnx_tools.quantize_static_int8(fp32.path, path, calibration_feeds(split, max_len))
        tried[mode] = evaluate(path, item_emb, split, max_len)
        if tried[mode].valid["ndcg@10"] >= target:
            break
    return choose_int8(tried, target), tried


def onnx_row(variant: str, v: Variant, params: int, lat: dict, note: str = "") -> Row:
    return Row(
        variant,
        v.test["ndcg@10"],
        v.test,
        params=params,
        size_bytes=v.path.stat().st_size,
        latency_ms=lat,
        note=note,
        valid_metric=v.valid["ndcg@10"],
    )
