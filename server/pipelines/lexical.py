"""The lexical half of hybrid search: the index export wrote beside the catalogue, loaded and
checked at load time (`kernels.lexical` scores queries with it, as export did)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kernels.lexical import LexicalIndex
from server.contract.pipelines import LexicalFiles
from server.errors import ModelLoadError
from server.pipelines.catalog import load_json, load_npy

__all__ = ["load_lexical_index"]


def load_lexical_index(folder: Path, files: LexicalFiles, n_items: int) -> LexicalIndex:
    """The index of `folder`, its postings checked against the catalogue's `n_items` rows;
    warmed (the scoring kernel compiled or loaded from Numba's cache) before any request."""
    terms = load_json(folder, files.vocabulary)
    if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
        raise ModelLoadError(f"{folder}: {files.vocabulary} must be a JSON list of strings")
    try:
        index = LexicalIndex(
            analyzer=files.analyzer,
            weighting=files.weighting,
            n_min=files.ngram_min,
            n_max=files.ngram_max,
            vocabulary={t: i for i, t in enumerate(terms)},
            idf=load_npy(folder, files.idf).astype(np.float32, copy=False),
            indptr=load_npy(folder, files.indptr).astype(np.int64, copy=False),
            items=load_npy(folder, files.items).astype(np.int32, copy=False),
            weights=load_npy(folder, files.weights).astype(np.float32, copy=False),
            n_items=n_items,
        )
    except ValueError as exc:
        raise ModelLoadError(f"{folder}: lexical index: {exc}") from None
    index.scores("warm up")
    return index
