"""Tokenisation at serving time: `tokenizers` with the exported `tokenizer.json` (truncation set
by export, padding off: the batcher pads each batch to its longest request); and the step that
search and answer share: one text tokenized, then encoded by the batched model, within the
request's budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from server.budget import Budget
from server.errors import ModelLoadError
from server.pipelines.base import InferModel, infer_within
from server.pipelines.cpu_work import cpu_work

__all__ = ["TextEncoder", "embed_text"]


class TextEncoder:
    def __init__(self, path: Path, max_tokens: int = 128) -> None:
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception that names no file
            raise ModelLoadError(f"{path}: cannot read the tokenizer: {exc}") from None
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_tokens)

    def ids(self, texts: list[str]) -> np.ndarray:
        """int64 [len(texts), longest] right-padded with 0 (the pad id of BERT vocabularies)."""
        encoded = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encoded)
        out = np.zeros((len(texts), width), dtype=np.int64)
        for i, e in enumerate(encoded):
            out[i, : len(e.ids)] = e.ids
        return out


async def embed_text(
    text: TextEncoder, encoder: InferModel, s: str, budget: Budget, where: str
) -> np.ndarray:
    """`encoder`'s `embedding` output [1, dim] for the text `s`: tokenized on the CPU pool (stage
    `tokenize`), then encoded by the batched model by the request's deadline (stage `encode`;
    `where` names the request field in errors). The budget is checked before encoding and
    after it (`retrieve` comes next)."""
    with budget.stage("tokenize"):
        ids = await cpu_work().run("tokenize", len(s), text.ids, [s])
    budget.check("encode")
    with budget.stage("encode"):
        res = await infer_within(encoder, {"input_ids": ids}, budget, where)
    budget.check("retrieve")
    return res.outputs["embedding"]
