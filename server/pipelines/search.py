"""Product search: query -> tokens -> search encoder (batched) -> inner products with the product
embeddings; with a lexical index in the spec, hybrid: the query's lexical scores (sparse dot
product over the index's postings, `kernels.lexical`) fused with the semantic ones by the spec's
`lexical_weight`, as export scored and chose it. Price filters restrict the top k, never the
scores."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from kernels import topk_inner_product
from kernels.lexical import LexicalIndex, fuse_scores, inner_products
from server.budget import Budget
from server.contract.pipelines import SearchSpec, artifact_path
from server.pipelines.base import InferModel, ModelSource
from server.pipelines.catalog import Retrieval
from server.pipelines.cpu_work import cpu_work
from server.pipelines.lexical import load_lexical_index
from server.pipelines.text import TextEncoder, embed_text
from server.schemas.v1 import SearchFilters, SearchRequest, SearchResponse

__all__ = ["SearchPipeline", "top_k"]


def top_k(scores: np.ndarray, k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, scores) of the k best eligible items, best first; ties by lower row (export's
    order). scores float32 [n]; mask bool [n] or None; fewer than k when fewer are eligible."""
    if mask is not None:
        rows = np.flatnonzero(mask)
        scores = scores[rows]
    else:
        rows = np.arange(len(scores))
    k = min(k, len(rows))
    if k == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    part = np.argpartition(-scores, k - 1)[:k] if k < len(rows) else np.arange(len(rows))
    # stable sort on (-score, row): equal scores keep the catalogue order
    order = part[np.lexsort((rows[part], -scores[part]))]
    return rows[order], scores[order]


class SearchPipeline:
    kind: ClassVar[str] = "search"

    def __init__(
        self,
        encoder: InferModel,
        retrieval: Retrieval,
        text: TextEncoder,
        lexical: LexicalIndex | None = None,
        lexical_weight: float = 0.0,
    ) -> None:
        self.encoder = encoder
        self.retrieval = retrieval
        self.text = text
        self.lexical = lexical
        self.lexical_weight = lexical_weight

    @classmethod
    def load(cls, spec: SearchSpec, folder: Path, models: ModelSource) -> SearchPipeline:
        retrieval = Retrieval.load(folder, spec.catalog, spec.product_embeddings)
        text = TextEncoder(artifact_path(folder, spec.tokenizer), spec.max_tokens)
        lexical = None
        if spec.lexical is not None:
            lexical = load_lexical_index(folder, spec.lexical, len(retrieval.catalog))
            items = retrieval.items.data
            inner_products(items[:1], np.zeros(items.shape[1], np.float32))  # compile now
        return cls(models.get_model(spec.encoder), retrieval, text, lexical, spec.lexical_weight)

    def versions(self) -> dict[str, str]:
        return self.retrieval.versions(self.encoder)

    def _fused(self, lex: np.ndarray, q: np.ndarray, k: int, mask):
        sem = inner_products(self.retrieval.items.data, q[0])
        return top_k(fuse_scores(lex, sem, self.lexical_weight), k, mask)

    async def _hybrid(self, query: str, q: np.ndarray, k: int, mask, budget: Budget):
        assert self.lexical is not None
        work, n = cpu_work(), self.retrieval.items.data.size
        with budget.stage("lexical"):
            lex = await work.run("lexical", len(query), self.lexical.scores, query)
        with budget.stage("retrieve"):
            return await work.run("search-fuse", n, self._fused, lex, q, k, mask)

    async def run(self, request: SearchRequest, budget: Budget) -> SearchResponse:
        f = request.filters or SearchFilters()
        catalog = self.retrieval.catalog
        mask = catalog.price_mask(f.price_min, f.price_max)
        emb = await embed_text(self.text, self.encoder, request.query, budget, "query")
        q = emb.astype(np.float32)
        if self.lexical is not None:
            rows, scores = await self._hybrid(request.query, q, request.k, mask, budget)
        else:
            with budget.stage("retrieve"):
                top, s = topk_inner_product(
                    q, self.retrieval.items, request.k, item_mask=mask, n_threads=1
                )
                rows, scores = top[0], s[0]
        return SearchResponse(
            items=catalog.items(rows, scores),
            degraded=False,
            model_versions=self.versions(),
        )
