"""Next-item recommender on Online Retail customer purchase sequences.

Split and metrics: `export.recommender_data` (leave-one-out per customer; HR@10 and NDCG@10 on
the full catalogue). Rows: popularity; the seed's LSTM; SASRec teacher; a smaller SASRec student
distilled from the teacher's soft targets plus the labels; the student in int8.

Published: `query_encoder` (history -> user vector) and, once, the `recommend` pipeline folder
(`RecommendSpec`) with the item matrix and item tables for the retrieval kernels. It names the
ranker stage (`RANKING`); the ranker export publishes that model with its feature tables.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from export import onnx_tools
from export.card import Card, Row, check_gates, served_variant, spec_summary
from export.options import ExportOptions, finish
from export.recommender_data import (
    RecData,
    encode_histories,
    load_rec_data,
    popularity,
    rank_metrics,
)
from export.repository import ModelFolder
from export.specs import OnnxSpec, TensorSpec
from export.training import param_count, seed_everything
from server.contract.pipelines import RankingSpec, RecommendSpec

__all__ = [
    "QUERY_ENCODER",
    "RANKING",
    "RANK_CANDIDATES",
    "RecData",
    "encode_histories",
    "export_recommender",
    "load_rec_data",
    "rank_metrics",
]

MODEL_NAME = "query_encoder"
PIPELINE_NAME = "recommend"
RANK_CANDIDATES = 50  # retrieved candidates per query: what the ranker is trained to re-rank
RANKING = RankingSpec(model="ranker", candidates=RANK_CANDIDATES)  # default artifact names

HISTORY = TensorSpec("history", "TYPE_INT64", (-1,), pad_value=-1)  # item indices, newest last
USER_VECTOR = TensorSpec("user_vector", "TYPE_FP32", (64,))  # the full build's width
QUERY_ENCODER = OnnxSpec(
    name=MODEL_NAME,
    inputs=(HISTORY,),
    outputs=(USER_VECTOR,),
    max_batch_size=256,
    preferred_batch_size=(16, 64),
    warmup_dynamic_dim=50,
    atol=1e-3,
)
LATENCY_BATCHES = (1, 64)
HISTORY_NOTE = "history: item indices (0..N-1), most recent last, right-padded with -1"


def served_spec(width: int, max_len: int, n_items: int) -> OnnxSpec:
    """`QUERY_ENCODER` at the trained width, warmed up at the build's history length, with the
    bounds the server checks before queueing: item indices in the catalogue, at most `max_len`."""
    spec = replace(QUERY_ENCODER, warmup_dynamic_dim=max_len)
    history = replace(HISTORY, min_value=0, max_value=n_items - 1, max_dims=(max_len,))
    return spec.with_tensor(replace(USER_VECTOR, dims=(width,))).with_tensor(history)


# -- baseline, seed, teacher, student (torch) ---------------------------------------------------


def popularity_row(data: RecData, counts: np.ndarray) -> Row:
    pop = np.broadcast_to(counts, (len(data.test_target), data.n_items))
    m = rank_metrics(pop, data.test_target)
    return Row(
        "baseline",
        m["ndcg@10"],
        m,
        params=data.n_items,
        note="most purchased items (training events)",
    )


def _torch_row(variant: str, model, data: RecData) -> Row:
    from export.recommender_train import scores

    m = rank_metrics(scores(model, data.test_hist(), data.max_len), data.test_target)
    return Row(variant, m["ndcg@10"], m, params=param_count(model))


# the same epochs (6; the student starts from the teacher: 4), early stopping (patience 2) and
# optimiser for seed and teacher; the CPU budget is only a cap
def train_seed(data: RecData, opts: ExportOptions):
    from export.recommender_train import SeqTraining, train_seq
    from export.seqmodels import SeedLSTM

    q = opts.quick
    model = SeedLSTM(data.n_items, 32 if q else 64, 64 if q else 128)
    run = SeqTraining("seed LSTM", epochs=3 if q else 6, budget_s=6 if q else 900)
    train_seq(model, data, run, opts.seed)
    return model


def train_teacher(data: RecData, opts: ExportOptions):
    from export.recommender_train import SeqTraining, train_seq
    from export.seqmodels import SASRec

    q = opts.quick
    model = SASRec(data.n_items, 32 if q else 64, 1 if q else 2, 2, data.max_len)
    run = SeqTraining("teacher SASRec", epochs=3 if q else 6, budget_s=6 if q else 900, lr=4e-3)
    train_seq(model, data, run, opts.seed)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def train_student(teacher, data: RecData, opts: ExportOptions):
    """The teacher's width, one block instead of two, initialised from the teacher's item and
    position embeddings, first block and final norm (layer dropping, as for the text student)."""
    from export.recommender_train import SeqTraining, train_seq
    from export.seqmodels import SASRec

    q = opts.quick
    model = SASRec(data.n_items, teacher.item.embedding_dim, 1, 2, data.max_len)
    model.load_state_dict(
        {k: v for k, v in teacher.state_dict().items() if not k.startswith("blocks.1.")}
    )
    run = SeqTraining(
        "student SASRec (distil)", epochs=3 if q else 4, budget_s=6 if q else 900, lr=4e-3
    )
    train_seq(model, data, run, opts.seed, teacher=teacher)
    return model


# -- export, check, quantize ---------------------------------------------------------------------


@dataclass
class Variant:
    """An exported ONNX file with its session and test metrics."""

    path: Path
    sess: object
    users: np.ndarray  # user vectors of the test histories
    metrics: dict[str, float]


def _latency(sess, max_len: int, n_items: int, runs: int) -> dict[str, float]:
    """Latency on random histories of the full length."""
    rng = np.random.default_rng(0)
    feeds = {
        b: {HISTORY.name: rng.integers(0, n_items, (b, max_len)).astype(np.int64)}
        for b in LATENCY_BATCHES
    }
    return onnx_tools.latency_by_batch(sess, feeds, runs)


def _evaluate(path: Path, x_test: np.ndarray, item_emb: np.ndarray, data: RecData) -> Variant:
    sess = onnx_tools.session(path)
    users = onnx_tools.run_session(sess, {HISTORY.name: x_test})[0]
    return Variant(path, sess, users, rank_metrics(users @ item_emb.T, data.test_target))


def export_encoder(spec: OnnxSpec, model, data: RecData, path: Path) -> Path:
    """`QueryEncoder(model)` -> ONNX at `path` (example: the first 8 test histories)."""
    import torch

    from export.seqmodels import QueryEncoder

    hist = torch.tensor(encode_histories(data.test_hist()[:8], data.max_len))
    return spec.export(QueryEncoder(model), (hist,), path)


def check_encoder(spec: OnnxSpec, student, x_test: np.ndarray, variant: Variant):
    """The student's ONNX user vectors against torch's on every test history."""
    import torch

    from export.seqmodels import QueryEncoder

    with torch.no_grad():
        ref = QueryEncoder(student)(torch.tensor(x_test)).numpy()
    check = spec.check([ref], [variant.users])
    if not check.passed:
        raise RuntimeError(f"{spec.name}: ONNX output differs from torch: {check}")
    return check


def quantize(
    fp32: Path, work: Path, x_test: np.ndarray, item_emb: np.ndarray, data: RecData, target: float
) -> tuple[str, dict[str, Variant]]:
    """int8: dynamic per-channel first; static (calibrated) if dynamic misses `target`.
    Returns the best mode and every mode tried."""
    calib = [{HISTORY.name: x_test[i : i + 32]} for i in range(0, min(len(x_test), 256), 32)]
    tried: dict[str, Variant] = {}
    for mode in ("dynamic", "static"):
        path = work / f"student-int8-{mode}.onnx"
        if mode == "dynamic":
            onnx_tools.quantize_dynamic_int8(fp32, path)
        else:
            onnx_tools.quantize_static_int8(fp32, path, calib)
        tried[mode] = _evaluate(path, x_test, item_emb, data)
        if tried[mode].metrics["ndcg@10"] >= target:
            break
    return max(tried, key=lambda k: tried[k].metrics["ndcg@10"]), tried


def _onnx_row(variant: str, v: Variant, params: int, latency: dict, note: str = "") -> Row:
    m = v.metrics
    return Row(
        variant,
        m["ndcg@10"],
        m,
        params=params,
        size_bytes=v.path.stat().st_size,
        latency_ms=latency,
        note=note,
    )


# -- the repository ------------------------------------------------------------------------------


def _card(opts: ExportOptions, data: RecData, rows: list[Row], served: str, extra: dict) -> Card:
    gate = check_gates(
        rows, served=served, speed_batch="batch_1", min_speedup=2.0, quick=opts.quick
    )
    split = (
        "leave-one-out per customer (last item test, previous validation), "
        f"{len(data.test_target)} customers" + ("; --quick: 500 customers" if opts.quick else "")
    )
    return Card(
        MODEL_NAME,
        "next-item retrieval: purchase history -> user vector, scored against "
        f"{PIPELINE_NAME}/1/item_embeddings.npy over the full catalogue",
        {
            "name": "Online Retail (UCI 352), customer purchase sequences",
            "rows": data.rows,
            "split": split,
        },
        "ndcg@10",
        rows,
        gate,
        extra={
            "cleaning": data.cleaning,
            **extra,
            "served_variant": served,
            "n_items": data.n_items,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )


def _write_query_encoder(
    folder: ModelFolder, spec: OnnxSpec, served: str, variants: dict[str, Variant], max_len: int
) -> None:
    """The served file as `1/model.onnx` (the fp32 one beside it) and `config.toml`."""
    (folder.version / "model.onnx").write_bytes(variants[served].path.read_bytes())
    (folder.version / "model_fp32.onnx").write_bytes(variants["student"].path.read_bytes())
    notes = {"variant": served, "max_history": str(max_len), "note": HISTORY_NOTE}
    folder.write_config(spec.config(notes))


def write_recommend_pipeline(
    opts: ExportOptions, data: RecData, item_emb: np.ndarray, counts: np.ndarray
) -> RecommendSpec:
    """The `recommend` folder: `pipeline.toml` and the catalogue, written once."""
    spec = RecommendSpec(query_encoder=MODEL_NAME, max_history=data.max_len, ranking=RANKING)
    folder = ModelFolder(opts.out, PIPELINE_NAME)
    v, cat = folder.version, spec.catalog
    np.save(v / spec.item_embeddings, item_emb)
    np.save(v / spec.popularity, counts)
    np.save(v / cat.item_prices, data.items["price"].to_numpy(np.float32))
    (v / cat.item_ids).write_text(json.dumps(data.items["StockCode"].tolist()))
    (v / cat.item_titles).write_text(json.dumps(data.titles()))
    folder.write_pipeline(spec)
    folder.publish()
    return spec


def export_recommender(opts: ExportOptions) -> None:
    seed_everything(opts.seed)
    data = load_rec_data(opts.quick, opts.seed)
    n, L = data.n_items, data.max_len
    opts.log(f"[recommender] {len(data.train)} customers, {n} items, max history {L}")
    counts = popularity(data)
    rows = [popularity_row(data, counts), _torch_row("seed", train_seed(data, opts), data)]
    teacher = train_teacher(data, opts)
    teacher_row = _torch_row("teacher", teacher, data)
    rows.append(teacher_row)
    student = train_student(teacher, data, opts)

    work, runs = opts.cache / "recommender", 30 if opts.quick else 300
    item_emb = student.item_matrix().detach().numpy().astype(np.float32)
    spec = served_spec(item_emb.shape[1], L, item_emb.shape[0])
    x_test = encode_histories(data.test_hist(), L)
    t_path = export_encoder(spec, teacher, data, work / "teacher.onnx")
    s_path = export_encoder(spec, student, data, work / "student.onnx")
    fp32 = _evaluate(s_path, x_test, item_emb, data)
    check = check_encoder(spec, student, x_test, fp32)
    rows.append(_onnx_row("student", fp32, param_count(student), _latency(fp32.sess, L, n, runs)))
    teacher_row.latency_ms = _latency(onnx_tools.session(t_path), L, n, runs)
    teacher_row.size_bytes = t_path.stat().st_size

    mode, tried = quantize(s_path, work, x_test, item_emb, data, 0.99 * rows[-1].metric)
    int8, note = tried[mode], f"{mode} int8, per-channel MatMul/Gemm weights"
    lat = _latency(int8.sess, L, n, runs)
    rows.append(_onnx_row("student-int8", int8, param_count(student), lat, note))

    served = served_variant(rows, "batch_1")
    folder = ModelFolder(opts.out, MODEL_NAME)
    _write_query_encoder(folder, spec, served, {"student": fp32, "student-int8": int8}, L)
    extra = {
        "export_check": check.to_dict(),
        "contract": spec_summary(spec),
        "int8_tried": {k: v.metrics for k, v in tried.items()},
    }
    finish(opts, folder, _card(opts, data, rows, served, extra))  # raises: then no recommend
    write_recommend_pipeline(opts, data, item_emb, counts)
