"""The `search` family: hybrid product search (issue 10 item 3).

1. data (`search_data`, `search_corpus`): the catalogue, held-out items, the known-item and
   shopper query sets, the distillation corpus from training items and reviews only;
2. teacher (`search_teacher`): MiniLM-L6 embeds every product once (`product_embeddings.npy`),
   the corpus (the student's targets) and the evaluation queries;
3. query student (`search_student`): a token bag + MLP distilled into the teacher's space;
   exported, checked and quantized (`search_onnx`);
4. lexical indices (`kernels.lexical`: char n-gram TF-IDF, BM25) and the fusion of lexical and
   semantic scores, index and weight chosen on validation (`search_systems`);
5. the card with its relevance tables and gate (`search_card`), then the `search_encoder` model
   and the `search/` pipeline (catalogue, product embeddings, lexical index, fusion weight).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from export.card import Row, Rule, served_variant
from export.options import ExportOptions, finish
from export.repository import CACHE, ModelFolder
from export.search_card import SearchCard, build_card
from export.search_corpus import CORPUS_SIZES, corpus_for, review_texts
from export.search_data import Catalogue, SearchData, load_search_data
from export.search_onnx import SEARCH_ENCODER, encoder_latency, export_student
from export.search_student import StudentConfig, build_student, embed_ids, train_student
from export.search_systems import Fusion, SystemScores, choose_fusion, write_pool
from export.search_teacher import Teacher, load_search_teacher
from export.text_data import tokenizer_json
from export.training import param_count, seed_everything
from kernels.lexical import LexicalIndex, build_bm25, build_tfidf
from server.contract.pipelines import LexicalFiles, SearchSpec

__all__ = ["PIPELINE", "TIERS", "export_search", "write_lexical_index", "write_search_pipeline"]

PIPELINE = "search"
MAX_TOKENS = 32  # the served tokenizer truncates queries here
MIN_INT8_COSINE = 0.99


@dataclass(frozen=True)
class Tier:
    budget_s: int  # the wall budget this tier is sized for (quiet 2-core machine)
    student: StudentConfig
    latency_runs: int
    latency_s: float


TIERS = {
    "quick": Tier(0, StudentConfig(hidden=128, epochs=2, budget_s=8), 20, 0.5),
    "preview": Tier(60, StudentConfig(hidden=512, epochs=6, budget_s=20), 200, 2.0),
    "full": Tier(420, StudentConfig(hidden=1024, epochs=12, budget_s=150), 500, 5.0),
}


@dataclass
class Stage:
    """What one build holds after the teacher and the student."""

    opts: ExportOptions
    tier: str
    data: SearchData
    teacher: Teacher
    products: np.ndarray  # the teacher's product embeddings (served)
    queries: dict[tuple[str, str], np.ndarray]  # the teacher's evaluation-query embeddings
    corpus_info: dict
    timings: dict


def _teacher_stage(opts: ExportOptions, tier: str) -> tuple[Stage, object, np.ndarray]:
    """Data, teacher embeddings of products, evaluation queries and the corpus."""
    t0 = time.perf_counter()
    data = load_search_data(opts.tier, opts.quick)
    titles, reviews = review_texts()
    corpus = corpus_for(data, titles, reviews, CORPUS_SIZES[tier], opts.seed)
    texts = data.catalogue.texts
    opts.log(f"[search] corpus {len(corpus)} texts {corpus.counts}, dropped {corpus.dropped}")
    teacher = load_search_teacher(cache=opts.out / CACHE / "search-teacher")
    work = opts.cache / "search"
    teacher.export_onnx(work / "teacher.onnx")
    t1 = time.perf_counter()
    products = teacher.embed(texts, opts.log)
    queries = {
        (split, name): teacher.embed(qs.texts)
        for split in ("valid", "test")
        for name, qs in data.eval_sets(split).items()
    }
    targets = teacher.embed(corpus.texts, opts.log)
    timings = {"data_s": round(t1 - t0, 1), "teacher_embed_s": round(time.perf_counter() - t1, 1)}
    info = {
        "texts": len(corpus),
        "by_kind": corpus.counts,
        "dropped_eval_or_held_out": corpus.dropped,
    }
    stage = Stage(opts, tier, data, teacher, products, queries, info, timings)
    return stage, corpus, targets


def _distil(stage: Stage, corpus, targets: np.ndarray):
    """The query student, early-stopped on the validation queries' mean cosine to the teacher."""
    import torch

    torch.set_num_threads(1)  # small matrices: a second thread costs more than it gives here
    cfg = TIERS[stage.tier].student
    table = stage.teacher.bert.embeddings.word_embeddings.weight.detach().numpy()
    model = build_student(table, cfg.hidden)
    ids = stage.teacher.ids(corpus.texts)
    valid_ids = {k: stage.teacher.ids(qs.texts) for k, qs in stage.data.eval_sets("valid").items()}

    def valid() -> float:
        cos = [
            (embed_ids(model, valid_ids[k]) * stage.queries[("valid", k)]).sum(1).mean()
            for k in valid_ids
        ]
        return float(np.mean(cos))

    stage.opts.log(f"[search] student: bag + MLP {cfg.hidden}, distilling on {len(ids)} texts")
    info = train_student(model, ids, targets, valid, cfg, stage.opts.seed)
    stage.timings["student_train_s"] = info["seconds"]
    return model, info, ids


def _query_embeddings(stage: Stage, encode) -> dict[tuple[str, str], np.ndarray]:
    return {
        (split, name): encode(stage.teacher.ids(qs.texts, MAX_TOKENS))
        for split in ("valid", "test")
        for name, qs in stage.data.eval_sets(split).items()
    }


def _mean_cos(a: dict, b: dict, split: str) -> float:
    return round(float(np.mean([(a[k] * b[k]).sum(1).mean() for k in a if k[0] == split])), 4)


def _rows(stage, scores: SystemScores, fusion: Fusion, enc: dict, sizes: dict, latency: dict):
    """The gated rows: baseline (TF-IDF), teacher hybrid, student / student-int8 hybrids."""
    test, valid = scores.relevance("test", fusion), scores.relevance("valid", fusion)

    def m(r: dict, system: str) -> dict[str, float]:
        out = {}
        for s in ("known-item", "shopper"):
            out[f"{s} recall@10"] = r[system][s]["recall@10"]
            out[f"{s} ndcg@10"] = r[system][s]["ndcg@10"]
        return out

    def mean(r: dict, system: str) -> float:
        return round(
            (r[system]["known-item"]["recall@10"] + r[system]["shopper"]["recall@10"]) / 2, 4
        )

    def row(variant: str, system: str, **kw) -> Row:
        return Row(
            variant, mean(test, system), m(test, system), valid_metric=mean(valid, system), **kw
        )

    rows = [
        row(
            "baseline",
            "tfidf",
            note="TF-IDF char 2-4 grams (scikit-learn), cosine",
            runtime="sklearn",
        ),
        row(
            "teacher",
            "teacher-hybrid",
            params=sizes["teacher_params"],
            size_bytes=sizes["teacher_bytes"],
            latency_ms=latency["teacher"],
            note="MiniLM-L6 query encoder + the same lexical half and weight",
        ),
    ]
    for variant, system in (("student", "hybrid"), ("student-int8", "hybrid-int8")):
        cos = _mean_cos(enc[variant], stage.queries, "test")
        rows.append(
            row(
                variant,
                system,
                params=sizes["student_params"],
                size_bytes=enc[f"{variant}_bytes"],
                latency_ms=latency[variant],
                note=f"query cosine to teacher {cos}"
                + (
                    " (dynamic int8: token table, MatMul/Gemm)" if variant == "student-int8" else ""
                ),
            )
        )
    return rows, test, valid


def _indices(data: SearchData) -> dict[str, LexicalIndex]:
    texts = data.catalogue.texts
    return {"tfidf": build_tfidf(texts), "bm25": build_bm25(texts)}


def _retrieval_ms(index: LexicalIndex, products: np.ndarray, weight: float) -> float:
    """Median ms of the served query path after the encoder, as the server runs it: lexical
    scores, inner products, fusion and the top 10 (one thread, the Numba kernels)."""
    from export.onnx_tools import measure_latency_ms
    from kernels.lexical import fuse_scores, inner_products

    q = np.ascontiguousarray(products[0])

    def once():
        s = fuse_scores(
            index.scores("christmas table decoration"), inner_products(products, q), weight
        )
        np.argpartition(-s, 10)[:10]

    return measure_latency_ms(once, runs=200, budget_s=2.0)


def export_search(opts: ExportOptions) -> None:
    """Build, gate and publish `search_encoder` and the `search/` pipeline."""
    seed_everything(opts.seed)
    t0 = time.perf_counter()
    tier = "quick" if opts.quick else opts.tier
    stage, corpus, targets = _teacher_stage(opts, tier)
    student, train_info, corpus_ids = _distil(stage, corpus, targets)
    work = opts.cache / "search"
    ref = embed_ids(student, corpus_ids[:256])
    fp32, int8, check = export_student(student, corpus_ids[:256], ref, work)
    enc = {
        "student": _query_embeddings(stage, fp32),
        "student-int8": _query_embeddings(stage, int8),
    }
    enc["student_bytes"], enc["student-int8_bytes"] = fp32.size_bytes, int8.size_bytes
    t = TIERS[tier]
    latency = {
        "teacher": encoder_latency(work / "teacher.onnx", t.latency_runs, t.latency_s),
        "student": encoder_latency(fp32.path, t.latency_runs, t.latency_s),
        "student-int8": encoder_latency(int8.path, t.latency_runs, t.latency_s),
    }
    indices = _indices(stage.data)
    scores = SystemScores.lexical(stage.data, indices)
    scores.add_semantic("teacher", stage.queries, stage.products)
    for variant in ("student", "student-int8"):
        scores.add_semantic(variant, enc[variant], stage.products)
    fusion = choose_fusion(*scores.valid_inputs())
    opts.log(f"[search] fusion chosen on validation: {fusion.lexical}, weight {fusion.weight}")
    sizes = {
        "teacher_params": param_count(stage.teacher.bert),
        "teacher_bytes": (work / "teacher.onnx").stat().st_size,
        "student_params": param_count(student),
    }
    rows, test, valid = _rows(stage, scores, fusion, enc, sizes, latency)
    cos = _mean_cos(enc["student-int8"], enc["student"], "valid")
    quant = Rule(
        f"student-int8 mean cosine to student >= {MIN_INT8_COSINE} (validation queries)",
        cos,
        MIN_INT8_COSINE,
        cos >= MIN_INT8_COSINE,
    )
    served = served_variant(rows, "batch_1")
    n_unjudged = write_pool(work / "pool_unjudged.tsv", scores.pool(fusion), stage.data)
    opts.log(f"[search] {n_unjudged} pooled shopper pairs unjudged ({work / 'pool_unjudged.tsv'})")
    stage.timings["wall_s"] = round(time.perf_counter() - t0, 1)
    extra = {
        "quick": opts.quick,
        "export_check": check.to_dict(),
        "corpus": stage.corpus_info,
        "student": {"hidden": TIERS[tier].student.hidden, **train_info},
        "pooled_unjudged": n_unjudged,
        "retrieval_ms": _retrieval_ms(indices[fusion.lexical], stage.products, fusion.weight),
        "budget": {"tier": tier, "budget_s": t.budget_s, **stage.timings},
    }
    tier_of_card = "full" if opts.quick else opts.tier
    card = build_card(stage.data, rows, test, valid, fusion, served, quant, extra, tier_of_card)
    _publish(opts, fp32 if served == "student" else int8, served, card)
    tokenizer = tokenizer_json(stage.teacher.path, MAX_TOKENS)
    index = indices[fusion.lexical]
    write_search_pipeline(
        opts, stage.data.catalogue, stage.products, tokenizer, index, fusion.weight
    )


def _publish(opts: ExportOptions, enc, served: str, card: SearchCard) -> None:
    """`search_encoder/`: the served ONNX file, its config and card (gate permitting)."""
    from export.card import spec_summary

    folder = ModelFolder(opts.out, SEARCH_ENCODER.name)
    (folder.version / "model.onnx").write_bytes(enc.path.read_bytes())
    notes = {"variant": served, "normalized": "true", "pipeline": PIPELINE}
    folder.write_config(SEARCH_ENCODER.config(notes))
    card.extra["contract"] = spec_summary(SEARCH_ENCODER)
    finish(opts, folder, card)


def write_search_pipeline(
    opts: ExportOptions,
    cat: Catalogue,
    products: np.ndarray,
    tokenizer: str,
    index: LexicalIndex,
    weight: float,
) -> None:
    """`search/`: the catalogue, the teacher's product embeddings, the lexical index, the
    tokenizer and the fusion weight, row for row with the catalogue."""
    lexical = LexicalFiles(
        analyzer=index.analyzer,  # type: ignore[arg-type]
        weighting=index.weighting,  # type: ignore[arg-type]
        ngram_min=index.n_min,
        ngram_max=index.n_max,
    )
    spec = SearchSpec(
        encoder=SEARCH_ENCODER.name,
        max_tokens=MAX_TOKENS,
        lexical=lexical,
        lexical_weight=float(weight),
    )
    folder = ModelFolder(opts.out, PIPELINE)
    v = folder.version
    np.save(v / spec.product_embeddings, products.astype(np.float32))
    (v / spec.catalog.item_ids).write_text(json.dumps(cat.codes))
    (v / spec.catalog.item_titles).write_text(json.dumps(cat.descriptions))
    np.save(v / spec.catalog.item_prices, cat.prices.astype(np.float32))
    (v / spec.tokenizer).write_text(tokenizer)
    write_lexical_index(v, lexical, index)
    folder.write_pipeline(spec)
    folder.publish()


def write_lexical_index(v, lexical, index) -> None:
    """The lexical index's files (`LexicalFiles` names) in version folder `v`; the server reads
    them with `server.pipelines.lexical.load_lexical_index`."""
    terms = sorted(index.vocabulary, key=index.vocabulary.__getitem__)
    (v / lexical.vocabulary).write_text(json.dumps(terms))
    np.save(v / lexical.idf, index.idf.astype(np.float32))
    np.save(v / lexical.indptr, index.indptr.astype(np.int64))
    np.save(v / lexical.items, index.items.astype(np.int32))
    np.save(v / lexical.weights, index.weights.astype(np.float32))
