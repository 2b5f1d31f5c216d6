"""Personalised recommendation: history -> query encoder (batched) -> candidates by inner product
over the item embeddings (Numba kernel, filters, exclusions) -> ranker when it is served and the
budget allows -> top k. An empty or entirely unknown history falls back to popularity within the
filters; unknown items are listed, not fatal."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import ClassVar

import numpy as np

from kernels import topk_inner_product
from server.budget import Budget
from server.contract.pipelines import RecommendSpec
from server.errors import DeadlineExceeded, ModelNotFound, ModelNotReady
from server.pipelines.base import InferModel, ModelSource, infer_within
from server.pipelines.catalog import Retrieval, load_npy
from server.pipelines.cpu_work import cpu_work
from server.pipelines.ranking import Ranking
from server.schemas.v1 import Item, RecommendFilters, RecommendRequest, RecommendResponse

__all__ = ["RecommendPipeline"]

log = logging.getLogger("shopserve.pipelines")

# time kept back from the ranker for encoding the answer
_ANSWER_RESERVE_NS = 1_000_000


class RecommendPipeline:
    kind: ClassVar[str] = "recommend"

    def __init__(
        self,
        spec: RecommendSpec,
        encoder: InferModel,
        retrieval: Retrieval,
        popularity: np.ndarray,
        ranking: Ranking | None,
    ) -> None:
        self.spec = spec
        self.encoder = encoder
        self.retrieval = retrieval
        self.catalog = retrieval.catalog
        self.popularity = popularity
        # most popular first, ties by lower index: deterministic fallbacks
        self.by_popularity = np.lexsort((np.arange(len(popularity)), -popularity))
        self.ranking = ranking

    @classmethod
    def load(cls, spec: RecommendSpec, folder: Path, models: ModelSource) -> RecommendPipeline:
        retrieval = Retrieval.load(folder, spec.catalog, spec.item_embeddings)
        pop = load_npy(folder, spec.popularity)
        encoder = models.get_model(spec.query_encoder)
        ranking = None
        if spec.ranking is not None:
            try:
                ranking = Ranking(spec.ranking, models.get_model(spec.ranking.model))
            except (ModelNotFound, ModelNotReady) as exc:
                log.warning("recommend: answering in retrieval order (degraded): %s", exc.message)
        return cls(spec, encoder, retrieval, pop.astype(np.float64), ranking)

    def versions(self) -> dict[str, str]:
        used = [self.encoder] + ([self.ranking.model] if self.ranking else [])
        return self.retrieval.versions(*used)

    async def run(self, request: RecommendRequest, budget: Budget) -> RecommendResponse:
        f = request.filters or RecommendFilters()
        mask = self.catalog.price_mask(f.price_min, f.price_max)
        index = self.catalog.index
        known = [index[h] for h in request.history if h in index]
        ignored = [h for h in request.history if h not in index]
        exclude = sorted(set(known)) if f.exclude_history else []
        if not known:
            with budget.stage("popularity"):
                items = self._popular(request.k, mask, set(exclude))
            return RecommendResponse(items, False, ignored, self.retrieval.versions())
        items, degraded = await self._personal(known, request, mask, exclude, budget)
        return RecommendResponse(items, degraded, ignored, self.versions())

    async def _personal(
        self,
        known: list[int],
        request: RecommendRequest,
        mask: np.ndarray | None,
        exclude: list[int],
        budget: Budget,
    ) -> tuple[list[Item], bool]:
        seq = np.asarray(known[-self.spec.max_history :], dtype=np.int64)[None, :]
        budget.check("encode")
        with budget.stage("encode"):
            res = await infer_within(self.encoder, {"history": seq}, budget, "history")
        user = res.outputs["user_vector"].astype(np.float32)
        budget.check("retrieve")
        k = request.k
        n_cand = max(k, self.spec.ranking.candidates) if self.spec.ranking else k
        ex = np.asarray(exclude, dtype=np.int64)
        with budget.stage("retrieve"):
            ids, scores = await cpu_work().run(
                "recommend-retrieve",
                self.retrieval.items.data.size,
                partial(
                    topk_inner_product,
                    item_mask=mask,
                    exclude_indptr=np.asarray([0, len(ex)], np.int64),
                    exclude_indices=ex,
                    n_threads=1,
                ),
                user,
                self.retrieval.items,
                min(n_cand, 1000),
            )
        ids, scores = ids[0][ids[0] >= 0], scores[0][ids[0] >= 0]
        if self.spec.ranking is None or len(ids) == 0:
            return self.catalog.items(ids[:k], scores[:k]), False
        ranked = await self._rank(ids, scores, known, request.user_id, budget)
        if ranked is None:  # ranking could not finish in time (or is not served): retrieval order
            return self.catalog.items(ids[:k], scores[:k]), True
        order = np.argsort(-ranked, kind="stable")[:k]
        return self.catalog.items(ids[order], ranked[order].astype(np.float32)), False

    def _popular(self, k: int, mask: np.ndarray | None, exclude: set[int]) -> list[Item]:
        order = self.by_popularity
        if mask is not None:
            order = order[mask[order]]
        picked = [int(i) for i in order[: k + len(exclude)] if int(i) not in exclude][:k]
        total = float(self.popularity.sum()) or 1.0
        return self.catalog.items(
            np.asarray(picked, np.int64),
            np.asarray([self.popularity[i] / total for i in picked], np.float32),
        )

    async def _rank(
        self,
        ids: np.ndarray,
        scores: np.ndarray,
        known: list[int],
        user_id: str | None,
        budget: Budget,
    ) -> np.ndarray | None:
        """Ranker scores for the candidates, or None when it cannot answer within the budget."""
        if self.ranking is None:
            return None
        ranker = self.ranking.model
        deadline = budget.deadline_ns - _ANSWER_RESERVE_NS
        if budget.left_ns() - _ANSWER_RESERVE_NS < ranker.expected_ns(len(ids)):
            return None
        with budget.stage("features"):
            x = await cpu_work().run(
                "features", len(ids), self.ranking.features, ids, known, user_id
            )
        try:
            with budget.stage("rank"):
                res = await ranker.infer(
                    {"features": x, "retrieval_score": scores.astype(np.float32)[:, None]},
                    deadline_ns=deadline,
                    request_id=budget.request_id,
                    where="ranker",
                )
        except DeadlineExceeded:
            return None
        return res.outputs["score"][:, 0]
