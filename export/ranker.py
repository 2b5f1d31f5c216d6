"""Ranker: re-scores the recommender's retrieved candidates.

Features come from `kernels.features.assemble_features` with the spec written to
`features.json` (the same code and spec the server runs), plus the retrieval score as a second
input; how the tables are derived from Online Retail: `export.ranker_features`. Recency in days
is left out: a request's history carries no timestamps.

Rows: retrieval order (baseline), a DCN-v2 teacher (3 cross layers + 256-256 MLP), an MLP student
(32-16) distilled from the teacher's listwise scores plus the labels, the student in int8.
Training queries: each customer's validation target (history and features: the events before
it), 10% of customers held out for early stopping and every choice (the served variant);
test: the test target (history and features: the events before it, validation item included).

Published: `ranker/` with its model and, in `1/`, the ranking artifacts the recommend pipeline
reads (`RANKING`'s file names): the feature spec, the feature tables and the user ids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export import onnx_tools
from export.card import Card, ExportError, Row, check_gates, served_variant, spec_summary
from export.options import ExportOptions, finish
from export.ranker_features import (
    FEATURE_SPEC,
    ITEM_COLS,
    USER_COLS,
    Queries,
    Retriever,
    build_tables,
    feature_spec,
    item_categories,
    ndcg,
    save_ranking_artifacts,
)
from export.recommender import PIPELINE_NAME as RECOMMEND_NAME
from export.recommender import RANK_CANDIDATES, RANKING, RecData, load_rec_data
from export.repository import ModelFolder
from export.specs import OnnxSpec, TensorSpec
from export.training import param_count, seed_everything
from kernels.features import FeatureTables
from server.contract.pipelines import PIPELINE_FILE, RecommendSpec, load_pipeline_spec

__all__ = ["RANKER", "export_ranker", "feature_spec"]

RANKER = OnnxSpec(
    name=RANKING.model,
    inputs=(
        TensorSpec("features", "TYPE_FP32", (FEATURE_SPEC.n_features,)),
        TensorSpec("retrieval_score", "TYPE_FP32", (1,)),
    ),
    outputs=(TensorSpec("score", "TYPE_FP32", (1,)),),
    max_batch_size=1024,
    preferred_batch_size=(10 * RANK_CANDIDATES,),
    atol=1e-3,
)
LATENCY_BATCHES = (1, 64, 10 * RANK_CANDIDATES)
SPEED_BATCH = f"batch_{10 * RANK_CANDIDATES}"


# -- data: retrieval, derived tables, queries ----------------------------------------------------


def retrieval_inputs(out: Path) -> tuple[Path, Path, int]:
    """The recommender's published query encoder, item matrix and history length (the ranker
    re-ranks its top-K), read from `recommend/pipeline.toml`, which must name this ranker as its
    ranking stage."""
    pipeline = out / RECOMMEND_NAME / PIPELINE_FILE
    hint = f"run `shopserve export recommender --out {out}` first"
    if not pipeline.exists():
        raise ExportError(
            f"ranker needs the recommender's retrieval model: {hint} ({pipeline} is missing)"
        )
    _, spec = load_pipeline_spec(pipeline)
    if not isinstance(spec, RecommendSpec) or spec.ranking != RANKING:
        raise ExportError(f"{pipeline} does not name the ranking stage {RANKING}: {hint}")
    qe = out / spec.query_encoder / "1" / "model.onnx"
    emb = out / RECOMMEND_NAME / "1" / spec.item_embeddings
    for path in (qe, emb):
        if not path.exists():
            raise ExportError(
                f"ranker needs the recommender's retrieval model: {hint} ({path} is missing)"
            )
    return qe, emb, spec.max_history


@dataclass
class RankerData:
    data: RecData
    n_cat: int
    tables: (
        FeatureTables  # of the test queries (what is published): prefixes before each test target
    )
    train: Queries  # validation targets, history = training prefix
    test: Queries  # test targets, history = training prefix + validation item


def load_ranker_data(opts: ExportOptions, qe: Path, item_emb: Path, max_len: int) -> RankerData:
    data = load_rec_data(opts.quick, opts.seed)
    n_cat = 8 if opts.quick else 24
    titles = data.titles()
    opts.log(f"[ranker] item categories: k-means ({n_cat}) over {len(titles)} descriptions")
    category = item_categories(opts, titles, n_cat)
    retriever = Retriever(onnx_tools.session(qe), np.load(item_emb), max_len)
    loo = data.loo
    # the events before each validation target (training queries), before each test target (test)
    tables_tr = build_tables(data, [len(s) - 2 for s in data.seqs], category)
    tables_te = build_tables(data, [len(s) - 1 for s in data.seqs], category)
    train = retriever.queries(tables_tr, loo.valid_hist, loo.valid_target)
    test = retriever.queries(tables_te, loo.test_hist, loo.test_target)
    return RankerData(data, n_cat, tables_te, train, test)


def baseline_row(test: Queries, valid: Queries) -> Row:
    m = {"ndcg@10": ndcg(test.s, test.y), "recall@50": round(float(test.y.sum(1).mean()), 4)}
    return Row(
        "baseline",
        m["ndcg@10"],
        m,
        note="retrieval order (query_encoder inner product)",
        valid_metric=ndcg(valid.s, valid.y),
    )


# -- export, check, quantize -----------------------------------------------------------------------


def _feeds(q: Queries) -> dict[str, np.ndarray]:
    return dict(zip(RANKER.input_names, q.flat(), strict=True))


def _onnx_ndcg(sess, q: Queries) -> float:
    got = onnx_tools.run_session(sess, _feeds(q), batch=4096)[0].reshape(q.y.shape)
    return ndcg(got, q.y)


def onnx_row(variant: str, path: Path, qs: tuple[Queries, Queries], runs: int, model=None, note=""):
    """The ONNX file's test and validation NDCG and latency; checked against `model` (torch) on
    the validation queries when given. `qs`: (test, validation)."""
    from export.ranker_models import scores

    test, valid = qs
    sess = onnx_tools.session(path)
    check = None
    if model is not None:
        got = onnx_tools.run_session(sess, _feeds(valid), batch=4096)[0].reshape(valid.y.shape)
        check = RANKER.check([scores(model, valid.x, valid.s)], [got])
        if not check.passed:
            raise RuntimeError(f"ranker {variant}: ONNX output differs from torch: {check}")
    m = {"ndcg@10": _onnx_ndcg(sess, test)}
    latency = onnx_tools.latency_by_batch(
        sess, onnx_tools.head_feeds(_feeds(test), LATENCY_BATCHES), runs
    )
    row = Row(
        variant,
        m["ndcg@10"],
        m,
        size_bytes=path.stat().st_size,
        latency_ms=latency,
        note=note,
        valid_metric=_onnx_ndcg(sess, valid),
    )
    return row, check


def export_variants(teacher, student, qs: tuple[Queries, Queries], work: Path, runs: int):
    """Teacher, student and the student's dynamic int8: rows, files and the student's check."""
    import torch

    valid = qs[1]
    example = (torch.tensor(valid.x[0]), torch.tensor(valid.s[0].reshape(-1, 1)))
    t_path = RANKER.export(teacher, example, work / "teacher.onnx")
    t_row, _ = onnx_row("teacher", t_path, qs, runs, teacher)
    s_path = RANKER.export(student, example, work / "student.onnx")
    s_row, check = onnx_row("student", s_path, qs, runs, student)
    q_path = onnx_tools.quantize_dynamic_int8(s_path, work / "student-int8.onnx")
    note = "dynamic int8, per-channel Gemm/MatMul weights"
    q_row, _ = onnx_row("student-int8", q_path, qs, runs, note=note)
    t_row.params = param_count(teacher)
    s_row.params = q_row.params = param_count(student)
    paths = {"teacher": t_path, "student": s_path, "student-int8": q_path}
    return [t_row, s_row, q_row], paths, check


# -- the repository ------------------------------------------------------------------------------


def _test_set(rd: RankerData) -> str:
    a = rd.data.loo.about
    return (
        f"the test targets of {a['customers']} customers (each customer's last event, "
        f"{a['dates'][0]} .. {a['dates'][1]}), {a['events']} queries"
    )


def _card(opts, rd: RankerData, rows: list[Row], n_fit: int, served: str, extra: dict) -> Card:
    q = opts.quick
    gate = check_gates(
        rows, served=served, speed_batch=SPEED_BATCH, min_speedup=2.0, quick=q, tier=opts.tier
    )
    split = (
        f"train on the validation targets of {n_fit} customers (features from the events before "
        "each; 10% of customers held out for early stopping and the served-variant choice), "
        f"test on {_test_set(rd)}" + (" (--quick: 500 customers)" if q else "")
    )
    embeddings = "TF-IDF+SVD (--quick, preview)" if q or opts.preview else "MiniLM"
    return Card(
        RANKER.name,
        f"re-rank the top-{RANK_CANDIDATES} retrieved candidates (features: kernels.features spec "
        f"in 1/{RANKING.feature_spec} + retrieval score)",
        {
            "name": "Online Retail (UCI 352), customer purchase sequences",
            "rows": rd.data.rows,
            "split": split,
        },
        "ndcg@10",
        rows,
        gate,
        extra={
            **extra,
            "served_variant": served,
            "contract": spec_summary(RANKER),
            "features": FEATURE_SPEC.to_json(),
            "derived": {
                "item_category": f"k-means ({rd.n_cat}) over {embeddings} description embeddings",
                "user_columns": USER_COLS,
                "item_columns": ITEM_COLS,
                "tables": TABLES_NOTE,
            },
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )


TABLES_NOTE = (
    "published tables: user rows from each customer's events before their test target (training "
    "events + the validation item), item popularity and price from training events only (every "
    "customer's events before the validation item); no test target is in any table. Training "
    "queries used tables built the same way from the events before each validation target."
)


def _write_ranker(folder: ModelFolder, served: str, paths: dict[str, Path], rd: RankerData) -> None:
    (folder.version / "model.onnx").write_bytes(paths[served].read_bytes())
    save_ranking_artifacts(folder.version, rd.tables, rd.data.customers)
    folder.write_config(RANKER.config({"variant": served, "candidates": str(RANK_CANDIDATES)}))


def _notes(rows: list[Row], plan, fits: dict, tier: str, wall_s: float) -> dict:
    by = {r.variant: r for r in rows}
    t, s = by["teacher"], by["student"]
    note = (
        f"the teacher is at least as good as its student (test NDCG@10 {t.metric} vs "
        f"{s.metric}; validation "
        f"{t.valid_metric} vs {s.valid_metric})"
        if t.metric >= s.metric
        else f"the student ({s.metric}) is above its teacher ({t.metric}) on test (validation "
        f"{s.valid_metric} vs {t.valid_metric}); both were early-stopped on the same "
        "validation customers within their epoch and CPU limits (runs below)"
    )
    budget = {"tier": tier, "wall": plan.budget, "wall_s": wall_s, "runs": fits}
    budget |= {"epochs_max": plan.epochs, "cpu_cap_s_per_run": plan.cpu_s}
    runs = "; ".join(
        f"{k}: {v['epochs']} epochs, valid NDCG@10 {v['valid_ndcg@10']}, {v['s']} s"
        for k, v in fits.items()
    )
    text = (
        f"- Teacher vs student: {note}.\n- Budget ({tier} tier): {plan.budget}; at most "
        f"{plan.epochs} epochs and {plan.cpu_s:.0f} CPU s per run, early-stopped on the held-out "
        f"validation customers. Runs: {runs}. Wall time of this build: {wall_s} s.\n"
        f"- Feature tables: {TABLES_NOTE}\n"
    )
    return {"teacher_note": note, "budget": budget, "sections": {"Budget and notes": text}}


def export_ranker(opts: ExportOptions) -> None:
    from export.ranker_models import plan_of, split_queries, train_student, train_teacher

    t0 = time.perf_counter()
    qe, item_emb, max_len = retrieval_inputs(opts.out)
    seed_everything(opts.seed)
    tier, plan = plan_of(opts)
    rd = load_ranker_data(opts, qe, item_emb, max_len)
    split = split_queries(rd.train, opts.seed)
    opts.log(
        f"[ranker] {len(split.fit)} training queries x {RANK_CANDIDATES} candidates, "
        f"{FEATURE_SPEC.n_features} kernel features + retrieval score, tier {tier}"
    )
    fits: dict[str, dict] = {}
    teacher = train_teacher(split, plan, seed=opts.seed, fits=fits)
    student = train_student(split, teacher, plan, seed=opts.seed, fits=fits)

    runs = 20 if opts.quick else 200
    qs = (rd.test, rd.train.take(split.valid))
    variants, paths, check = export_variants(teacher, student, qs, opts.cache / "ranker", runs)
    rows = [baseline_row(*qs), *variants]
    served = served_variant(rows, SPEED_BATCH)
    folder = ModelFolder(opts.out, RANKER.name)
    _write_ranker(folder, served, paths, rd)
    extra = {"export_check": check.to_dict()}
    extra |= _notes(rows, plan, fits, tier, round(time.perf_counter() - t0, 1))
    finish(opts, folder, _card(opts, rd, rows, len(split.fit), served, extra))
