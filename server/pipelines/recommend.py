"""Personalised recommendation: history -> query encoder (batched) -> candidates by inner product
over the item embeddings (Numba kernel, filters, exclusions) -> ranker when one is served and the
budget allows -> top k. An empty or entirely unknown history falls back to popularity within the
filters; unknown items are listed, not fatal."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kernels import ItemMatrix, topk_inner_product
from server.budget import Budget
from server.errors import ModelNotFound, ModelNotReady
from server.model import LoadedModel
from server.pipelines.catalog import Catalog

__all__ = ["RecommendPipeline", "Recommendation"]

log = logging.getLogger("shopserve.pipelines")


@dataclass(slots=True)
class Recommendation:
    items: list[tuple[str, str, float, float]]
    degraded: bool
    ignored: list[str]
    versions: dict[str, str] = field(default_factory=dict)
    source: str = "retrieval"


class RecommendPipeline:
    def __init__(self, config: Any, version: int, folder: Path, repository: Any) -> None:
        p = config.parameters
        self.name = config.name
        self.config = config
        self.version = version
        self.repository = repository
        self.encoder_name: str = p["query_encoder"]
        self.ranker_name: str | None = p.get("ranker")
        self.max_history = int(p.get("max_history", 50))
        self.catalog = Catalog(folder, p)
        emb = np.load(folder / p["item_embeddings"], allow_pickle=False).astype(np.float32)
        if emb.shape[0] != len(self.catalog):
            raise ValueError(
                f"{folder}: {emb.shape[0]} item embeddings for {len(self.catalog)} items"
            )
        self.items = ItemMatrix.from_array(emb)
        popularity = np.load(folder / p["popularity"], allow_pickle=False).astype(np.float64)
        # most popular first, ties by lower index: deterministic fallbacks
        self.by_popularity = np.lexsort((np.arange(len(popularity)), -popularity))
        self.popularity = popularity
        self.candidates = int(p.get("candidates", 100))

    def _model(self, name: str) -> LoadedModel:
        model = self.repository.get(name)
        if not isinstance(model, LoadedModel):
            raise ModelNotReady(f"model '{name}' is not an ONNX model")
        return model

    def _popular(
        self, k: int, mask: np.ndarray | None, exclude: set[int]
    ) -> list[tuple[str, str, float, float]]:
        order = self.by_popularity
        if mask is not None:
            order = order[mask[order]]
        picked = [int(i) for i in order[: k + len(exclude)] if int(i) not in exclude][:k]
        total = float(self.popularity.sum()) or 1.0
        return self.catalog.items(
            np.asarray(picked, np.int64),
            np.asarray([self.popularity[i] / total for i in picked], np.float32),
        )

    async def recommend(
        self,
        history: list[str],
        k: int,
        price_min: float | None,
        price_max: float | None,
        exclude_history: bool,
        budget: Budget,
    ) -> Recommendation:
        mask = self.catalog.price_mask(price_min, price_max)
        known = [self.catalog.index[h] for h in history if h in self.catalog.index]
        ignored = [h for h in history if h not in self.catalog.index]
        versions = {self.name: str(self.version)}
        exclude = set(known) if exclude_history else set()
        if not known:
            with budget.stage("popularity"):
                items = self._popular(k, mask, exclude)
            return Recommendation(items, False, ignored, versions, source="popularity")
        encoder = self._model(self.encoder_name)
        versions[encoder.name] = str(encoder.version)
        seq = np.asarray(known[-self.max_history :], dtype=np.int64)[None, :]
        budget.check("encode")
        with budget.stage("encode"):
            res = await encoder.infer(
                {"history": seq}, deadline_ns=budget.deadline_ns, where="history"
            )
        user = res.outputs["user_vector"].astype(np.float32)
        budget.check("retrieve")
        n_cand = max(k, self.candidates) if self.ranker_name else k
        ex = np.asarray(sorted(exclude), dtype=np.int64)
        with budget.stage("retrieve"):
            ids, scores = topk_inner_product(
                user,
                self.items,
                min(n_cand, 1000),
                item_mask=mask,
                exclude_indptr=np.asarray([0, len(ex)], np.int64),
                exclude_indices=ex,
                n_threads=1,
            )
        degraded = False
        if self.ranker_name:
            try:
                ranker = self._model(self.ranker_name)
            except (ModelNotFound, ModelNotReady) as exc:
                log.warning(
                    "recommend: ranker unavailable, answering in retrieval order: %s", exc.message
                )
                degraded = True
            else:
                versions[ranker.name] = str(ranker.version)
                degraded = True  # no feature spec wired for this ranker: retrieval order
        return Recommendation(
            self.catalog.items(ids[0][:k], scores[0][:k]), degraded, ignored, versions
        )
