"""The product search encoder `search_encoder` (input_ids -> unit embedding) and the `search`
pipeline beside it: rows baseline, teacher, student, student-int8; recall@10 against the teacher's
top 10 over the Online Retail product descriptions."""

from __future__ import annotations

import json

import numpy as np

from export.card import Card, Row, Rule, check_gates
from export.repository import ModelFolder
from export.specs import OnnxSpec
from export.text_baselines import search_baseline_row
from export.text_data import INPUT_IDS, MAX_TOKENS, catalog_items
from export.text_metrics import embed, mean_cosine, recall, run_sorted, topk
from export.text_models import EmbeddingOnly
from export.text_onnx import EMBEDDING, INT8_NOTE, Exported, TextRun
from export.training import param_count
from server.contract.pipelines import SearchSpec

__all__ = ["PIPELINE", "SEARCH_ENCODER", "export_search", "write_search_pipeline"]

PIPELINE = "search"
SEARCH_ENCODER = OnnxSpec(
    name="search_encoder",
    inputs=(INPUT_IDS,),
    outputs=(EMBEDDING,),
    max_batch_size=64,
    # a batch of long reviews takes tens of ms on a busy 2-core CPU: the model's own deadline
    # is generous, and /v1 budgets (100 ms for classify) shorten it per request
    default_timeout_us=1_000_000,
    preferred_batch_size=(8, 32),
    warmup_dynamic_dim=16,
)
MIN_INT8_COSINE = 0.99  # the quantized encoder's mean cosine to the fp32 student


class _Scorer:
    """recall@10 of (query, product) embeddings against the teacher's top 10, and their mean
    cosine to the teacher's embeddings."""

    def __init__(self, run: TextRun):
        self.t_prod, self.t_query = run.teacher.products, run.teacher.queries
        self.t_top = topk(self.t_query, self.t_prod)

    def __call__(self, prod: np.ndarray, query: np.ndarray) -> dict[str, float]:
        cos = mean_cosine([(prod, self.t_prod), (query, self.t_query)])
        return {"recall@10": recall(topk(query, prod), self.t_top), "mean_cosine": round(cos, 4)}


def _row(variant: str, run: TextRun, v: Exported, m: dict[str, float], note: str = "") -> Row:
    return Row(
        variant,
        m["recall@10"],
        m,
        params=param_count(run.student.bert),
        size_bytes=v.size_bytes,
        latency_ms=run.bench.latency(v.sess),
        note=note,
    )


def _rows(run: TextRun, fp32: Exported, int8: Exported) -> tuple[list[Row], Rule]:
    """Every card row, and the quantization rule (mean cosine of int8 to fp32 embeddings)."""
    score = _Scorer(run)
    teacher = Row(
        "teacher",
        1.0,
        {"recall@10": 1.0, "mean_cosine": 1.0},
        params=param_count(run.teacher.encoder.bert),
        size_bytes=run.teacher_size,
        latency_ms=run.teacher_latency,
    )
    rows = [search_baseline_row(run.data, score.t_top), teacher]
    fp32_query, int8_query = (run_sorted(v.sess, run.ids.queries) for v in (fp32, int8))
    rows.append(_row("student", run, fp32, score(fp32.out, fp32_query)))
    m = score(int8.out, int8_query)
    cos = round(mean_cosine([(int8.out, fp32.out), (int8_query, fp32_query)]), 4)
    m["cosine_to_student"] = cos
    rows.append(_row("student-int8", run, int8, m, note=INT8_NOTE))
    what = f"student-int8 mean cosine to student >= {MIN_INT8_COSINE}"
    return rows, Rule(what, cos, MIN_INT8_COSINE, cos >= MIN_INT8_COSINE)


def _card(run: TextRun, rows: list[Row], quant: Rule, served: str, check) -> Card:
    data = run.data
    gate = check_gates(
        rows,
        served=served,
        speed_batch="batch_1",
        min_speedup=3.0,
        quick=run.opts.quick,
        quant_rule=quant,
    )
    return Card(
        SEARCH_ENCODER.name,
        "product search: query/product text -> unit embedding (inner product); "
        "recall@10 against the teacher's top-10 over the Online Retail product descriptions",
        {
            "name": "Online Retail product descriptions (corpus) + review titles (queries)",
            "rows": len(data.products),
            "split": f"{len(data.queries)} queries (two-word description spans + held-out "
            "review titles); "
            "corpus = all product descriptions (distillation saw the corpus, never the queries)",
        },
        "recall@10",
        rows,
        gate,
        extra={
            "export_check": check.to_dict(),
            "served_variant": served,
            "latency_input": "32 tokens",
        },
    )


def export_search(run: TextRun) -> None:
    """Export the student's embedding as `search_encoder`; publish it (gate permitting) and the
    `search` pipeline over the products' embeddings by the served variant."""
    run.opts.log(f"[text] {SEARCH_ENCODER.name}")
    prod_ids = run.ids.products
    fp32, check = run.export_checked(
        SEARCH_ENCODER,
        EmbeddingOnly(run.student),
        "student_search.onnx",
        prod_ids,
        embed(run.student, prod_ids)[0],
    )
    int8 = fp32.quantized(prod_ids)
    rows, quant = _rows(run, fp32, int8)
    served = int8 if quant.passed else fp32
    variant = "student-int8" if quant.passed else "student"
    card = _card(run, rows, quant, variant, check)
    notes = {"variant": variant, "normalized": "true", "pipeline": PIPELINE}
    if run.publish(SEARCH_ENCODER, served, notes, card):  # the pipeline only beside its encoder
        run.attempt(write_search_pipeline, run, served.out)


def write_search_pipeline(run: TextRun, product_emb: np.ndarray) -> None:
    """`search/`: the product embeddings, the catalogue rows they belong to, the tokenizer."""
    spec = SearchSpec(encoder=SEARCH_ENCODER.name, max_tokens=MAX_TOKENS)
    # --quick embeds only the first products: the catalogue must match the embeddings row for row
    items = catalog_items(len(product_emb))
    folder = ModelFolder(run.opts.out, PIPELINE)
    v, cat = folder.version, spec.catalog
    np.save(v / spec.product_embeddings, product_emb.astype(np.float32))
    (v / cat.item_ids).write_text(json.dumps(items["StockCode"].tolist()))
    (v / cat.item_titles).write_text(
        json.dumps(items["Description"].fillna("").str.strip().tolist())
    )
    np.save(v / cat.item_prices, items["price"].to_numpy(np.float32))
    (v / spec.tokenizer).write_text(run.tokenizer)
    folder.write_pipeline(spec)
    folder.publish()
