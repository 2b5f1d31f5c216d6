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

from kernels import FeatureSpec, FeatureTables, ItemMatrix, assemble_features, topk_inner_product
from server.budget import Budget
from server.errors import DeadlineExceeded, ModelNotFound, ModelNotReady
from server.pipelines.catalog import Catalog

__all__ = ["RecommendPipeline", "Recommendation"]

log = logging.getLogger("shopserve.pipelines")

# time kept back from the ranker for encoding the answer (ms)
_ANSWER_RESERVE_NS = 1_000_000


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
        self.ranking = _Ranking.load(folder, p) if p.get("feature_spec") else None

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
        user_id: str | None,
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
        encoder = self.repository.get_model(self.encoder_name)
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
        ids, scores = ids[0], scores[0]
        ids, scores = ids[ids >= 0], scores[ids >= 0]
        if not self.ranker_name or len(ids) == 0:
            return Recommendation(self.catalog.items(ids[:k], scores[:k]), False, ignored, versions)
        ranked = await self._rank(ids, scores, known, user_id, budget, versions)
        if ranked is None:  # ranking could not finish in time: the retrieval order, flagged
            return Recommendation(self.catalog.items(ids[:k], scores[:k]), True, ignored, versions)
        order = np.argsort(-ranked, kind="stable")[:k]
        return Recommendation(
            self.catalog.items(ids[order], ranked[order].astype(np.float32)),
            False,
            ignored,
            versions,
            "ranker",
        )

    async def _rank(
        self,
        ids: np.ndarray,
        scores: np.ndarray,
        known: list[int],
        user_id: str | None,
        budget: Budget,
        versions: dict[str, str],
    ) -> np.ndarray | None:
        """Ranker scores for the candidates, or None when it cannot answer within the budget."""
        assert self.ranker_name is not None
        if self.ranking is None:
            log.warning("recommend: ranker named but no feature_spec in the pipeline folder")
            return None
        try:
            ranker = self.repository.get_model(self.ranker_name)
        except (ModelNotFound, ModelNotReady) as exc:
            log.warning(
                "recommend: ranker unavailable, answering in retrieval order: %s", exc.message
            )
            return None
        versions[ranker.name] = str(ranker.version)
        deadline = budget.deadline_ns - _ANSWER_RESERVE_NS
        expected = ranker.latency.expected_ns(len(ids))
        if budget.left_ns() - _ANSWER_RESERVE_NS < expected:
            return None
        with budget.stage("features"):
            x = self.ranking.features(ids, known, user_id)
        try:
            with budget.stage("rank"):
                res = await ranker.infer(
                    {"features": x, "retrieval_score": scores.astype(np.float32)[:, None]},
                    deadline_ns=deadline,
                    where="ranker",
                )
        except DeadlineExceeded:
            return None
        return res.outputs["score"][:, 0]


class _Ranking:
    """The ranker's feature spec and tables (written by export beside the pipeline), and the
    same assembly kernel that built the training features."""

    def __init__(
        self, spec: FeatureSpec, tables: FeatureTables, users: dict[str, int], p: dict
    ) -> None:
        self.spec = spec
        self.tables = tables
        self.users = users
        self.unknown_row = int(p.get("unknown_user_row", 0))
        self.recent_items = int(p.get("recent_items", 50))
        self.age_step_s = float(p.get("recent_age_step_s", 86400.0))

    @classmethod
    def load(cls, folder: Path, p: dict) -> _Ranking:
        import json

        spec = FeatureSpec.load(folder / p["feature_spec"])
        arrays = [np.load(folder / name, allow_pickle=False) for name in p["feature_tables"]]
        tables = FeatureTables(*arrays)
        users = {}
        if p.get("user_ids"):
            for row, uid in enumerate(json.loads((folder / p["user_ids"]).read_text()), start=1):
                users[str(uid)] = row
        return cls(spec, tables, users, p)

    def features(
        self, candidates: np.ndarray, history: list[int], user_id: str | None
    ) -> np.ndarray:
        row = (
            self.users.get(str(user_id), self.unknown_row)
            if user_id is not None
            else self.unknown_row
        )
        recent = np.asarray(history[-self.recent_items :], dtype=np.int64)
        ages = ((len(recent) - np.arange(len(recent))) * self.age_step_s).astype(np.float32)
        out = np.empty((len(candidates), self.spec.n_features), np.float32)
        return assemble_features(
            self.spec,
            self.tables,
            np.asarray([row], np.int64),
            np.asarray([0, len(candidates)], np.int64),
            candidates.astype(np.int64),
            np.asarray([0, len(recent)], np.int64),
            recent,
            ages,
            out,
        )
