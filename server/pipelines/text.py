"""Tokenisation at serving time: `tokenizers` with the exported `tokenizer.json` (truncation set
by export, padding off: the batcher pads each batch to its longest request)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from server.errors import ModelLoadError

__all__ = ["TextEncoder"]


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
