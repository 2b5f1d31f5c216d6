"""The answer family's encoders: the MiniLM teacher over longer texts (customer questions run to
several sentences: 64 tokens, not search's 32), and the query student of `search_student`
(token bag + MLP, unchanged) distilled into the teacher's space on the knowledge-base corpus,
early-stopped on the validation questions' mean cosine to the teacher."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from export.search_onnx import SEARCH_ENCODER
from export.search_student import StudentConfig, build_student, embed_ids, train_student
from export.search_teacher import Teacher

__all__ = ["ANSWER_ENCODER", "MAX_TOKENS", "distil_student", "teacher_embed"]

MAX_TOKENS = 64  # the served tokenizer truncates questions here (teacher and student alike)
ANSWER_ENCODER = replace(SEARCH_ENCODER, name="answer_encoder", warmup_dynamic_dim=16)
BATCH = 64


def teacher_embed(teacher: Teacher, texts: list[str], cache: Path | None = None) -> np.ndarray:
    """float32 [n, 384] unit MiniLM embeddings at `MAX_TOKENS`: the search teacher's
    length-sorted batches (of `BATCH`), cached by the texts' hash as `faq_teacher_*.npy`."""
    return teacher.embed(
        texts, max_tokens=MAX_TOKENS, batch=BATCH, cache=cache, prefix="faq_teacher"
    )


def distil_student(
    teacher: Teacher,
    corpus_ids: np.ndarray,
    targets: np.ndarray,
    valid_ids: np.ndarray,
    valid_targets: np.ndarray,
    cfg: StudentConfig,
    seed: int,
):
    """(student, training info): `search_student`'s query student over MiniLM's word table,
    trained on 1 - cosine to the teacher's corpus embeddings, the best epoch by the validation
    questions' mean cosine to the teacher kept."""
    import torch

    torch.set_num_threads(1)  # small matrices: a second thread costs more than it gives here
    table = teacher.bert.embeddings.word_embeddings.weight.detach().numpy()  # type: ignore[attr-defined]
    model = build_student(table, cfg.hidden)

    def valid() -> float:
        return float((embed_ids(model, valid_ids) * valid_targets).sum(1).mean())

    t0 = time.perf_counter()
    info = train_student(model, corpus_ids, targets, valid, cfg, seed, desc="answer student")
    info["seconds"] = round(time.perf_counter() - t0, 1)
    return model, info
