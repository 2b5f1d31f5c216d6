"""Customer-service answers (issue 13): question -> tokens -> answer encoder (batched) -> cosine
with every phrasing of every knowledge-base entry, the best phrasing per entry; with a lexical
index over the entries, fused with the lexical scores as search fuses them; the top k entries.
The intent is a linear softmax over the same query embedding (a 16 x 384 product: a second
model call through the batcher would cost more than it computes), and the question is handed off
to a person when the best phrasing is too far or the intent too unsure, by the thresholds export
chose on validation (`AnswerSpec`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from kernels.lexical import LexicalIndex, fuse_scores, inner_products
from server.budget import Budget
from server.contract.pipelines import AnswerSpec, artifact_path
from server.errors import ModelLoadError
from server.pipelines.base import InferModel, ModelSource
from server.pipelines.catalog import load_json, load_npy
from server.pipelines.cpu_work import cpu_work
from server.pipelines.lexical import load_lexical_index
from server.pipelines.search import top_k
from server.pipelines.text import TextEncoder, embed_text
from server.schemas.v1 import Answer, AnswerRequest, AnswerResponse

__all__ = ["AnswerPipeline", "Entries", "Scored", "entry_scores"]

ENTRY_FIELDS = ("id", "intent", "question", "answer")


def entry_scores(phrasing_cosines: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """float32 [n_entries]: the best phrasing cosine of each entry. phrasing_cosines float32
    [n_phrasings]; indptr int64 [n_entries + 1], every entry with at least one phrasing."""
    return np.maximum.reduceat(phrasing_cosines, indptr[:-1]).astype(np.float32, copy=False)


@dataclass(frozen=True, eq=False)
class Entries:
    """The knowledge base as served: entries, their phrasings' embeddings and the intent head."""

    ids: list[str]
    intents_of: list[str]  # each entry's intent
    questions: list[str]
    answers: list[str]
    phrasings: np.ndarray  # float32 [n_phrasings, dim], unit rows
    indptr: np.ndarray  # int64 [n_entries + 1]
    intents: list[str]
    intent_w: np.ndarray  # float32 [n_intents, dim]
    intent_b: np.ndarray  # float32 [n_intents]

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def load(cls, folder: Path, spec: AnswerSpec) -> Entries:
        rows = load_json(folder, spec.entries)
        if not isinstance(rows, list) or not rows:
            raise ModelLoadError(f"{folder}: {spec.entries} must be a non-empty JSON list")
        for i, r in enumerate(rows):
            if not isinstance(r, dict) or not all(isinstance(r.get(f), str) for f in ENTRY_FIELDS):
                raise ModelLoadError(
                    f"{folder}: {spec.entries}[{i}] must have string fields {list(ENTRY_FIELDS)}"
                )
        phr = load_npy(folder, spec.phrasing_embeddings).astype(np.float32, copy=False)
        indptr = load_npy(folder, spec.phrasing_indptr).astype(np.int64, copy=False)
        w = load_npy(folder, spec.intent_weights).astype(np.float32, copy=False)
        b = load_npy(folder, spec.intent_bias).astype(np.float32, copy=False)
        n, k = len(rows), len(spec.intents)
        if indptr.shape != (n + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 1):
            raise ModelLoadError(
                f"{folder}: {spec.phrasing_indptr} must rise from 0 by at least 1 per entry "
                f"({n + 1} values)"
            )
        if phr.ndim != 2 or phr.shape[0] != indptr[-1]:
            raise ModelLoadError(
                f"{folder}: {spec.phrasing_embeddings} has shape {list(phr.shape)}; expected "
                f"[{int(indptr[-1])}, dim] (the phrasings {spec.phrasing_indptr} counts)"
            )
        if w.shape != (k, phr.shape[1]) or b.shape != (k,):
            raise ModelLoadError(
                f"{folder}: intent head {list(w.shape)} + {list(b.shape)}; expected "
                f"[{k}, {phr.shape[1]}] + [{k}] ({k} intents)"
            )
        unknown = sorted({r["intent"] for r in rows} - set(spec.intents))
        if unknown:
            raise ModelLoadError(f"{folder}: entries name intents {unknown} not in `intents`")
        return cls(
            [r["id"] for r in rows],
            [r["intent"] for r in rows],
            [r["question"] for r in rows],
            [r["answer"] for r in rows],
            phr,
            indptr,
            list(spec.intents),
            w,
            b,
        )

    def intent(self, q: np.ndarray) -> tuple[int, float]:
        """(intent row, its probability) for a unit query embedding q float32 [dim]."""
        logits = self.intent_w @ q + self.intent_b
        e = np.exp(logits - logits.max())
        p = e / e.sum()
        i = int(p.argmax())
        return i, float(p[i])


@dataclass(frozen=True)
class Scored:
    """One question's scores: entry rows best first, their scores, and the best raw cosine."""

    rows: np.ndarray
    scores: np.ndarray
    top_cosine: float


@dataclass(eq=False)
class AnswerPipeline:
    kind: ClassVar[str] = "answer"

    spec: AnswerSpec
    encoder: InferModel
    entries: Entries
    text: TextEncoder
    lexical: LexicalIndex | None
    own: dict[str, str]  # this pipeline folder's name -> its version

    @classmethod
    def load(cls, spec: AnswerSpec, folder: Path, models: ModelSource) -> AnswerPipeline:
        entries = Entries.load(folder, spec)
        text = TextEncoder(artifact_path(folder, spec.tokenizer), spec.max_tokens)
        lexical = None
        if spec.lexical is not None:
            lexical = load_lexical_index(folder, spec.lexical, len(entries))
        dim = entries.phrasings.shape[1]
        inner_products(entries.phrasings[:1], np.zeros(dim, np.float32))  # compile now
        own = {folder.parent.name: folder.name}
        return cls(spec, models.get_model(spec.encoder), entries, text, lexical, own)

    def versions(self) -> dict[str, str]:
        return {**self.own, self.encoder.name: str(self.encoder.version)}

    def score(self, question: str, q: np.ndarray, k: int) -> Scored:
        """The top k entries for a question and its unit embedding q float32 [dim] (export's
        scoring, one question at a time)."""
        e = self.entries
        cos = entry_scores(inner_products(e.phrasings, q), e.indptr)
        if self.lexical is not None and self.spec.lexical_weight > 0:
            scores = fuse_scores(self.lexical.scores(question), cos, self.spec.lexical_weight)
        else:
            scores = cos
        rows, top = top_k(scores, k, None)
        return Scored(rows, top, float(cos.max()))

    async def run(self, request: AnswerRequest, budget: Budget) -> AnswerResponse:
        emb = await embed_text(self.text, self.encoder, request.question, budget, "question")
        q = np.ascontiguousarray(emb[0], np.float32)
        e = self.entries
        with budget.stage("retrieve"):
            scored = await cpu_work().run(
                "answer-score", e.phrasings.size, self.score, request.question, q, request.k
            )
            intent, confidence = e.intent(q)
        handoff = scored.top_cosine < self.spec.min_cosine or confidence < self.spec.min_confidence
        answers = [
            Answer(e.ids[i], e.questions[i], e.answers[i], float(s))
            for i, s in zip(scored.rows.tolist(), scored.scores.tolist(), strict=True)
        ]
        return AnswerResponse(
            answers=answers,
            intent=e.intents[intent],
            confidence=round(confidence, 6),
            handoff=bool(handoff),
            model_versions=self.versions(),
        )
