"""The `faq` family: customer-service answers (issue 13, `POST /v1/answer`).

1. data (`faq_data`): the shop's knowledge base (`--faq FILE`, default `data/faq/entries.jsonl`)
   and the held-out customer questions, split once (fixed seed, stratified by intent) into
   validation (every choice) and test (the card); the corpus (`faq_corpus`) from the entries only;
2. teacher (`faq_models`): MiniLM-L6 embeds every entry phrasing (served: `phrasing_embeddings`),
   the corpus (the student's targets) and the questions; its intent head is an LR on its
   embeddings of the corpus (`faq_intent`);
3. query student: `search_student`'s bag + MLP distilled into the teacher's space, exported,
   checked and quantized as search's (`search_onnx.export_student`); its intent head an LR on
   its own embeddings of the corpus, distilled from the teacher head's probabilities;
4. lexical: BM25 over each entry's phrasings (or phrasings + answer), fused with the best-phrasing
   cosine (`kernels.lexical.fuse_scores`); index and weight, then the hand-off thresholds, chosen
   per system on validation (`faq_systems`);
5. the card and gate (`faq_card`), then `answer_encoder` and the `answer/` pipeline.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from export.card import served_variant
from export.faq_card import build_rows, faq_card, quant_rule
from export.faq_corpus import CORPUS_SIZES, FaqCorpus, build_corpus
from export.faq_data import FaqData, load_faq_data
from export.faq_intent import IntentHead, fit_head, tfidf_features
from export.faq_models import ANSWER_ENCODER, MAX_TOKENS, distil_student, teacher_embed
from export.faq_systems import Handoff, Scores, choose_handoff, choose_weight, entry_cosines
from export.options import ExportOptions, finish
from export.repository import CACHE, ModelFolder
from export.search import write_lexical_index
from export.search_onnx import encoder_latency, export_student
from export.search_student import StudentConfig, embed_ids
from export.search_teacher import Teacher, load_search_teacher
from export.text_data import tokenizer_json
from export.training import param_count, seed_everything
from kernels.lexical import LexicalIndex, build_bm25
from server.contract.pipelines import AnswerSpec, LexicalFiles

__all__ = ["PIPELINE", "TIERS", "export_faq"]

PIPELINE = "answer"


@dataclass(frozen=True)
class Tier:
    budget_s: int  # the wall budget this tier is sized for (quiet 2-core machine)
    student: StudentConfig
    cs: tuple[float, ...]  # the intent heads' C, chosen on validation
    alphas: tuple[float, ...]  # the student head's share of the teacher's probabilities
    latency_runs: int
    latency_s: float


TIERS = {
    "quick": Tier(0, StudentConfig(hidden=128, epochs=2, budget_s=8), (10.0,), (0.5,), 20, 0.5),
    "preview": Tier(
        60, StudentConfig(hidden=512, epochs=8, budget_s=20), (10.0, 100.0), (0.5,), 200, 2.0
    ),
    "full": Tier(
        300,
        StudentConfig(hidden=1024, epochs=20, budget_s=120),
        (10.0, 100.0),
        (0.5,),
        500,
        5.0,
    ),
}


@dataclass
class System:
    """One answering system, its choices made on validation, scored on both splits."""

    scores: dict[str, dict[str, Scores]]  # lexical docs -> split -> Scores
    docs: str = ""
    weight: float = 0.0
    handoff: Handoff | None = None
    fusion_table: dict | None = None

    def choose(self, data_y: dict[str, np.ndarray], entry_intent: np.ndarray) -> System:
        """Index and weight, then the thresholds: from the validation split only."""
        valid = {k: v["valid"] for k, v in self.scores.items()}
        self.docs, self.weight, self.fusion_table = choose_weight(
            valid, entry_intent, data_y["valid"]
        )
        self.handoff = choose_handoff(self.scores[self.docs]["valid"], data_y["valid"] < 0)
        return self

    def split(self, split: str) -> Scores:
        return self.scores[self.docs][split]


def _labels(data: FaqData) -> dict[str, np.ndarray]:
    """split -> int64 [n]: each question's intent row, -1 out of scope."""
    return {
        s: np.array([data.intents.index(i) if i else -1 for i in q.intents], np.int64)
        for s, q in data.questions.items()
    }


def _lexical_docs(data: FaqData) -> dict[str, list[str]]:
    return {
        "bm25 phrasings": [" ".join(e.phrasings) for e in data.entries],
        "bm25 phrasings+answer": [" ".join([*e.phrasings, e.answer]) for e in data.entries],
    }


def _neural(data, indices, queries, phrasings, indptr, head: IntentHead) -> System:
    """A MiniLM-space system: queries (split -> [n, 384]) against the teacher's phrasings."""
    out: dict[str, dict[str, Scores]] = {}
    for name, index in indices.items():
        out[name] = {}
        for split, q in data.questions.items():
            lex = np.stack([index.scores(t) for t in q.texts])
            cos = entry_cosines(queries[split], phrasings, indptr)
            out[name][split] = Scores(cos, lex, head.probs(queries[split]))
    return System(out)


def _baseline(data: FaqData, corpus, y_corpus, y, phr_texts, indptr, cs) -> tuple[System, dict]:
    """TF-IDF (char 2-4 grams + words) over the phrasings, cosine, best per entry; intent by an
    LR on the same features of the corpus."""
    tf = tfidf_features(corpus.texts)
    xq = {s: tf(q.texts) for s, q in data.questions.items()}
    head = fit_head(tf(corpus.texts), y_corpus, xq["valid"], y["valid"], len(data.intents), cs)
    xp = tf(phr_texts)
    scores = {s: Scores(entry_cosines(xq[s], xp, indptr), None, head.probs(xq[s])) for s in xq}
    return System({"tfidf": scores}), {"C": head.c, "valid_accuracy": head.valid_accuracy}


@dataclass
class Build:
    """What one build holds after the teacher (embeddings) and the student (query encodings)."""

    opts: ExportOptions
    tier: str
    data: FaqData
    corpus: FaqCorpus
    teacher: Teacher
    phrasings: np.ndarray  # the teacher's phrasing embeddings (served)
    indptr: np.ndarray
    targets: np.ndarray  # the teacher's corpus embeddings
    queries: dict[str, dict[str, np.ndarray]]  # variant -> split -> question embeddings
    timings: dict

    @property
    def work(self):
        return self.opts.cache / "faq"


def _teach(opts: ExportOptions, tier: str) -> Build:
    """Data, corpus, and the teacher's embeddings of phrasings, corpus and questions."""
    data = load_faq_data(opts.faq)
    forbidden = [x for q in data.questions.values() for x in q.texts]
    corpus = build_corpus(data.entries, forbidden, CORPUS_SIZES[tier], opts.seed)
    opts.log(f"[faq] corpus {len(corpus)} texts {corpus.counts}, dropped {corpus.dropped}")
    teacher = load_search_teacher()
    teacher.export_onnx(opts.cache / "faq" / "teacher.onnx")
    cache = opts.out / CACHE / "faq-teacher"
    t0 = time.perf_counter()
    phr_texts, indptr = data.phrasings
    phrasings = teacher_embed(teacher, phr_texts, cache)
    targets = teacher_embed(teacher, corpus.texts, cache)
    tq = {s: teacher_embed(teacher, q.texts, cache) for s, q in data.questions.items()}
    timings = {"teacher_embed_s": round(time.perf_counter() - t0, 1)}
    opts.log(f"[faq] teacher embedded {len(phr_texts) + len(corpus)} texts")
    return Build(
        opts, tier, data, corpus, teacher, phrasings, indptr, targets, {"teacher": tq}, timings
    )


def _distil(b: Build):
    """The query student, its ONNX fp32 and int8 files, and their question embeddings."""
    t = TIERS[b.tier]
    ids = b.teacher.ids(b.corpus.texts, MAX_TOKENS)
    qids = {s: b.teacher.ids(q.texts, MAX_TOKENS) for s, q in b.data.questions.items()}
    tq = b.queries["teacher"]
    student, info = distil_student(
        b.teacher, ids, b.targets, qids["valid"], tq["valid"], t.student, b.opts.seed
    )
    b.timings["student_train_s"] = info["seconds"]
    fp32, int8, check = export_student(student, ids[:256], embed_ids(student, ids[:256]), b.work)
    enc = {"student": fp32, "student-int8": int8}
    for v, e in enc.items():
        b.queries[v] = {s: e(qids[s]) for s in qids}
    return student, embed_ids(student, ids), enc, check, info


def _systems(b: Build, student_corpus: np.ndarray) -> tuple[dict, dict, dict]:
    """The four systems with their choices made on validation; the heads; the indices."""
    t, data = TIERS[b.tier], b.data
    y, entry_intent = _labels(data), data.entry_intents
    y_corpus = entry_intent[np.array(b.corpus.entry)]
    n, q = len(data.intents), b.queries
    t_head = fit_head(b.targets, y_corpus, q["teacher"]["valid"], y["valid"], n, t.cs)
    s_head = fit_head(
        student_corpus, y_corpus, q["student"]["valid"], y["valid"], n, t.cs,
        soft=t_head.probs(b.targets), alphas=t.alphas,
    )  # fmt: skip
    indices = {k: build_bm25(v) for k, v in _lexical_docs(data).items()}
    heads = {"teacher": t_head, "student": s_head, "student-int8": s_head}
    systems = {v: _neural(data, indices, q[v], b.phrasings, b.indptr, heads[v]) for v in heads}
    phr_texts, _ = data.phrasings
    systems["baseline"], base = _baseline(data, b.corpus, y_corpus, y, phr_texts, b.indptr, t.cs)
    for s in systems.values():
        s.choose(y, entry_intent)
    info = {
        "teacher": {"C": t_head.c, "valid_accuracy": t_head.valid_accuracy},
        "student": {"C": s_head.c, "alpha": s_head.alpha, "tried": s_head.tried},
        "baseline": base,
    }
    return systems, {"student": s_head, "info": info, "y": y}, indices


def export_faq(opts: ExportOptions) -> None:
    """Build, gate and publish `answer_encoder` and the `answer/` pipeline."""
    seed_everything(opts.seed)
    t0 = time.perf_counter()
    tier = "quick" if opts.quick else opts.tier
    t = TIERS[tier]
    b = _teach(opts, tier)
    student, student_corpus, enc, check, info = _distil(b)
    systems, heads, indices = _systems(b, student_corpus)
    latency = {
        "teacher": encoder_latency(b.work / "teacher.onnx", t.latency_runs, t.latency_s),
        "student": encoder_latency(enc["student"].path, t.latency_runs, t.latency_s),
        "student-int8": encoder_latency(enc["student-int8"].path, t.latency_runs, t.latency_s),
    }
    sizes = {
        "teacher_params": param_count(b.teacher.bert),
        "teacher_bytes": (b.work / "teacher.onnx").stat().st_size,
        "student_params": param_count(student),
        "student_bytes": enc["student"].size_bytes,
        "student-int8_bytes": enc["student-int8"].size_bytes,
    }
    q = b.queries
    cos = {v: round(float((q[v]["test"] * q["teacher"]["test"]).sum(1).mean()), 4) for v in enc}
    rows = build_rows(systems, heads["y"], b.data.entry_intents, latency, sizes, cos)
    quant = quant_rule(q["student-int8"]["valid"], q["student"]["valid"])
    served = served_variant(rows, "batch_1")
    if served == "student-int8" and not quant.passed:  # the validation cosine rules int8 out
        served = "student"
    b.timings["wall_s"] = round(time.perf_counter() - t0, 1)
    c = b.corpus
    extra = {
        "export_check": check.to_dict(),
        "corpus": {"texts": len(c), "by_kind": c.counts, "dropped": c.dropped},
        "student": {"hidden": t.student.hidden, **info},
        "intent_heads": heads["info"],
        "budget": {"tier": tier, "budget_s": t.budget_s, **b.timings},
    }
    tier_of_card = "full" if opts.quick else opts.tier
    card = faq_card(b.data, rows, systems, served, quant, extra, tier_of_card, opts.quick)
    _publish(opts, enc[served].path, served, card)
    _write_pipeline(b, indices, systems[served], heads["student"])


def _publish(opts: ExportOptions, path, served: str, card) -> None:
    """`answer_encoder/`: the served ONNX file, its config and card (gate permitting)."""
    from export.card import spec_summary

    folder = ModelFolder(opts.out, ANSWER_ENCODER.name)
    (folder.version / "model.onnx").write_bytes(path.read_bytes())
    notes = {"variant": served, "normalized": "true", "pipeline": PIPELINE}
    folder.write_config(ANSWER_ENCODER.config(notes))
    card.extra["contract"] = spec_summary(ANSWER_ENCODER)
    finish(opts, folder, card)


def _write_pipeline(b: Build, indices: dict, system: System, head: IntentHead) -> None:
    """`answer/`: the entries, the teacher's phrasing embeddings, the tokenizer, the lexical
    index of the served system's choice, its weight and thresholds, and the intent head."""
    assert system.handoff is not None
    opts, data = b.opts, b.data
    index: LexicalIndex = indices[system.docs]
    lexical = LexicalFiles(
        analyzer=index.analyzer,
        weighting=index.weighting,
        ngram_min=index.n_min,
        ngram_max=index.n_max,
    )
    spec = AnswerSpec(
        encoder=ANSWER_ENCODER.name,
        intents=list(data.intents),
        max_tokens=MAX_TOKENS,
        lexical=lexical,
        lexical_weight=float(system.weight),
        min_cosine=float(np.clip(system.handoff.min_cosine, -1, 1)),
        min_confidence=float(np.clip(system.handoff.min_confidence, 0, 1)),
    )
    folder = ModelFolder(opts.out, PIPELINE)
    v = folder.version
    entries = [
        {"id": e.id, "intent": e.intent, "question": e.question, "answer": e.answer}
        for e in data.entries
    ]
    (v / spec.entries).write_text(json.dumps(entries, ensure_ascii=False))
    np.save(v / spec.phrasing_embeddings, b.phrasings.astype(np.float32))
    np.save(v / spec.phrasing_indptr, b.indptr.astype(np.int64))
    np.save(v / spec.intent_weights, head.w.astype(np.float32))
    np.save(v / spec.intent_bias, head.b.astype(np.float32))
    (v / spec.tokenizer).write_text(tokenizer_json(b.teacher.path, MAX_TOKENS))
    write_lexical_index(v, lexical, index)
    folder.write_pipeline(spec)
    folder.publish()
