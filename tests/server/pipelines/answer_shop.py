"""A tiny customer-service repository over a fake encoder (tests/server/pipelines/fakes.py): the
`answer/` pipeline folder as export writes it (export/faq.py), five entries over three intents,
a BM25 index over the entries' phrasings, and an intent head whose rows are the mean embedding
of each intent's phrasings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernels.lexical import LexicalIndex, build_bm25
from server.contract.card import GateRule, GateSummary
from server.contract.model_config import ModelConfig
from server.contract.pipelines import AnswerSpec, LexicalFiles
from tests.server.pipelines.fakes import FakeModel, FakeModelSource, search_encoder_fn, tensor
from tests.server.pipelines.shop import (
    VOCAB,
    token_ids,
    write_lexical_index,
    write_pipeline,
    write_tokenizer,
)

__all__ = ["ENTRIES", "AnswerShop", "build_answer_shop"]

DIM = 16
ENTRIES = [
    {"id": "faq-1", "intent": "candles", "question": "red candle", "alts": ["white candle holder"]},
    {"id": "faq-2", "intent": "candles", "question": "black candle", "alts": []},
    {"id": "faq-3", "intent": "mugs", "question": "blue mug", "alts": ["green mug"]},
    {"id": "faq-4", "intent": "mugs", "question": "white mug", "alts": []},
    {"id": "faq-5", "intent": "clocks", "question": "white clock", "alts": ["black clock frame"]},
]
INTENTS = ["candles", "clocks", "mugs"]


@dataclass
class AnswerShop:
    repo: Path
    models: FakeModelSource
    spec: AnswerSpec
    index: LexicalIndex
    phrasings: np.ndarray  # float32 [n_phrasings, DIM]
    indptr: np.ndarray

    @property
    def folder(self) -> Path:
        return self.repo / "answer" / "1"

    def embed(self, text: str) -> np.ndarray:
        from server.pipelines.text import TextEncoder

        ids = TextEncoder(self.folder / "tokenizer.json", 16).ids([text])
        return self.models["answer_encoder"].fn({"input_ids": ids})["embedding"][0]


def build_answer_shop(root: Path, weight: float = 0.3, min_cosine: float = 0.9) -> AnswerShop:
    rng = np.random.default_rng(0)
    table = rng.standard_normal((len(VOCAB), DIM)).astype(np.float32)
    table[0] = 0.0
    fn = search_encoder_fn(table)
    config = ModelConfig(
        name="answer_encoder",
        max_batch_size=32,
        input=[token_ids()],
        output=[tensor("embedding", "TYPE_FP32", [DIM])],
    )
    models_dir = root / "models" / "answer_encoder" / "2"
    models_dir.mkdir(parents=True, exist_ok=True)
    gate = GateSummary(passed=True, rules=[GateRule("answer recall@3", 0.9, 0.5, True)])
    encoder = FakeModel(config, fn, models_dir, version=2, gate=gate)
    phrasings = [[e["question"], *e["alts"]] for e in ENTRIES]
    indptr = np.concatenate([[0], np.cumsum([len(p) for p in phrasings])]).astype(np.int64)
    index = build_bm25([" ".join(p) for p in phrasings])
    files = LexicalFiles(analyzer="word", weighting="bm25", ngram_min=1, ngram_max=1)
    spec = AnswerSpec(
        encoder="answer_encoder",
        intents=INTENTS,
        max_tokens=16,
        lexical=files,
        lexical_weight=weight,
        min_cosine=min_cosine,
        min_confidence=0.2,
    )
    folder = write_pipeline(root / "repo", "answer", spec)
    write_tokenizer(folder / "tokenizer.json")
    from server.pipelines.text import TextEncoder

    text = TextEncoder(folder / "tokenizer.json", 16)
    flat = [p for ps in phrasings for p in ps]
    emb = fn({"input_ids": text.ids(flat)})["embedding"]
    owner = np.repeat(np.arange(len(ENTRIES)), np.diff(indptr))
    head = np.stack(
        [emb[[ENTRIES[o]["intent"] == i for o in owner]].mean(0) for i in INTENTS]
    ).astype(np.float32)
    rows = [
        {"id": e["id"], "intent": e["intent"], "question": e["question"], "answer": f"A{n}."}
        for n, e in enumerate(ENTRIES)
    ]
    (folder / "entries.json").write_text(json.dumps(rows))
    np.save(folder / "phrasing_embeddings.npy", emb)
    np.save(folder / "phrasing_indptr.npy", indptr)
    np.save(folder / "intent_weights.npy", head * 8)
    np.save(folder / "intent_bias.npy", np.zeros(len(INTENTS), np.float32))
    write_lexical_index(folder, index, files)
    models = FakeModelSource({"answer_encoder": encoder})
    return AnswerShop(root / "repo", models, spec, index, emb, indptr)
