"""The `answer_encoder` card: one row per system (TF-IDF baseline, MiniLM teacher, the query
student fp32 and int8, each with its own lexical weight and hand-off thresholds chosen on
validation), the gate on answer recall@3, and sections stating the test set and the choices."""

from __future__ import annotations

import numpy as np

from export.card import Card, Row, Rule
from export.faq_data import SPLIT_SEED, FaqData
from export.faq_systems import metrics
from export.search_card import encoder_gate

__all__ = ["MIN_INT8_COSINE", "build_rows", "faq_card", "quant_rule"]

METRIC = "answer recall@3"
MIN_INT8_COSINE = 0.99
NOTES = {
    "baseline": "TF-IDF char 2-4 grams + words (scikit-learn) over the phrasings, cosine; intent: "
    "LR on the same features",
    "teacher": "MiniLM-L6 query embeddings + BM25 fusion; intent: LR on its embeddings",
    "student": "query student (bag + MLP) + BM25 fusion; intent head distilled from the teacher's",
    "student-int8": "the student, dynamic int8 (token table, MatMul/Gemm)",
}


def build_rows(systems: dict, y: dict, entry_intent, latency: dict, sizes: dict, cos: dict):
    """The card's rows: test metrics, the validation recall@3 as `valid_metric`."""
    rows = []
    for variant in ("baseline", "teacher", "student", "student-int8"):
        s = systems[variant]
        test = metrics(s.split("test"), s.weight, s.handoff, entry_intent, y["test"])
        valid = metrics(s.split("valid"), s.weight, s.handoff, entry_intent, y["valid"])
        kw: dict = {"note": NOTES[variant]}
        if variant == "baseline":
            kw["runtime"] = "sklearn"
        elif variant == "teacher":
            kw.update(
                params=sizes["teacher_params"],
                size_bytes=sizes["teacher_bytes"],
                latency_ms=latency["teacher"],
            )
        else:
            kw.update(
                params=sizes["student_params"],
                size_bytes=sizes[f"{variant}_bytes"],
                latency_ms=latency[variant],
            )
            kw["note"] += f"; test question cosine to teacher {cos[variant]}"
        metrics_out = {k: v for k, v in test.items() if k != METRIC}
        rows.append(Row(variant, test[METRIC], metrics_out, valid_metric=valid[METRIC], **kw))
    return rows


def quant_rule(int8_valid: np.ndarray, fp32_valid: np.ndarray) -> Rule:
    cos = round(float((int8_valid * fp32_valid).sum(1).mean()), 4)
    return Rule(
        f"student-int8 mean cosine to student >= {MIN_INT8_COSINE} (validation questions)",
        cos,
        MIN_INT8_COSINE,
        cos >= MIN_INT8_COSINE,
    )


def _test_set(data: FaqData) -> str:
    t, v = data.questions["test"], data.questions["valid"]
    n_in, n_out = int(t.in_scope.sum()), int((~t.in_scope).sum())
    return (
        f"Test set: {len(t)} of the {len(t) + len(v)} held-out customer questions of "
        f"data/faq/heldout_questions.jsonl ({n_in} in scope, {n_out} out of scope), split from "
        f"validation ({len(v)}) once, stratified by intent (out of scope its own stratum), seed "
        f"{SPLIT_SEED}; the first question ids {', '.join(t.ids[:8])} ... The questions were "
        "written from the intent list alone, before the entries; they carry an intent, not an "
        "entry, so `answer recall@k` counts an entry of the question's intent in the top k. "
        "Intent accuracy and recall are over the in-scope questions; hand-off precision/recall "
        "treat out of scope as the positive class, over all test questions. No held-out "
        "question is trained on: the corpus is made from the entries only (any generated text "
        "with the words of a held-out question is dropped)."
    )


def _choices(systems: dict) -> str:
    lines = ["| system | lexical | weight | min cosine | min confidence | valid hand-off F1 |"]
    lines.append("|---|---|---|---|---|---|")
    for name, s in systems.items():
        h = s.handoff
        lines.append(
            f"| {name} | {s.docs} | {s.weight:g} | {h.min_cosine:.4f} | {h.min_confidence:.4f} "
            f"| {h.valid_f1:.4f} |"
        )
    return (
        "Chosen on the validation questions, per system: the lexical index and weight (best "
        "answer recall@3, then MRR, then the smaller weight), then the hand-off thresholds "
        "(best hand-off F1, then fewer in-scope questions handed off). The served pipeline uses "
        "the served variant's.\n\n" + "\n".join(lines)
    )


def faq_card(
    data: FaqData, rows, systems: dict, served: str, quant: Rule, extra: dict, tier, quick
) -> Card:
    gate = encoder_gate(rows, served, quant, quick, tier)
    n_phr = sum(len(e.phrasings) for e in data.entries)
    return Card(
        "answer_encoder",
        "customer-service answers: question -> query student (token ids -> unit embedding in "
        "MiniLM's space) -> best phrasing cosine per knowledge-base entry, fused with BM25; "
        "intent head on the same embedding; hand-off by thresholds; metric: test answer "
        "recall@3 (an entry of the question's intent in the top 3)",
        {
            "name": f"shop knowledge base {data.source.name} ({len(data.entries)} entries, "
            f"{n_phr} phrasings, {len(data.intents)} intents) + held-out customer questions",
            "rows": len(data.questions["valid"]) + len(data.questions["test"]),
            "split": f"{len(data.questions['valid'])} validation / "
            f"{len(data.questions['test'])} test held-out questions (seed {SPLIT_SEED}, "
            "stratified by intent); training texts from the entries only",
        },
        METRIC,
        rows,
        gate,
        extra={
            **extra,
            "served_variant": served,
            "choices": {
                name: {
                    "lexical": s.docs,
                    "weight": s.weight,
                    "min_cosine": s.handoff.min_cosine,
                    "min_confidence": s.handoff.min_confidence,
                    "valid_handoff_f1": s.handoff.valid_f1,
                }
                for name, s in systems.items()
            },
            "speed_note": "latency = the query encoder alone at 8 tokens (batch 1, and 64 "
            "questions) on one ONNX Runtime thread; teacher and students timed alike",
            "sections": {"Test set": _test_set(data), "Choices": _choices(systems)},
        },
    )
