"""Semantic product search: query -> tokens -> search encoder (batched) -> exact inner-product
top-k over the product embeddings (Numba kernel) with price filters."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from kernels import topk_inner_product
from server.budget import Budget
from server.contract.pipelines import SearchSpec, artifact_path
from server.pipelines.base import InferModel, ModelSource, infer_within
from server.pipelines.catalog import Retrieval
from server.pipelines.text import TextEncoder
from server.schemas.v1 import SearchFilters, SearchRequest, SearchResponse

__all__ = ["SearchPipeline"]


class SearchPipeline:
    kind: ClassVar[str] = "search"

    def __init__(self, encoder: InferModel, retrieval: Retrieval, text: TextEncoder) -> None:
        self.encoder = encoder
        self.retrieval = retrieval
        self.text = text

    @classmethod
    def load(cls, spec: SearchSpec, folder: Path, models: ModelSource) -> SearchPipeline:
        retrieval = Retrieval.load(folder, spec.catalog, spec.product_embeddings)
        text = TextEncoder(artifact_path(folder, spec.tokenizer), spec.max_tokens)
        return cls(models.get_model(spec.encoder), retrieval, text)

    def versions(self) -> dict[str, str]:
        return self.retrieval.versions(self.encoder)

    async def run(self, request: SearchRequest, budget: Budget) -> SearchResponse:
        f = request.filters or SearchFilters()
        catalog = self.retrieval.catalog
        mask = catalog.price_mask(f.price_min, f.price_max)
        with budget.stage("tokenize"):
            ids = self.text.ids([request.query])
        budget.check("encode")
        with budget.stage("encode"):
            res = await infer_within(self.encoder, {"input_ids": ids}, budget, "query")
        budget.check("retrieve")
        with budget.stage("retrieve"):
            q = res.outputs["embedding"].astype(np.float32)
            top, scores = topk_inner_product(
                q, self.retrieval.items, request.k, item_mask=mask, n_threads=1
            )
        return SearchResponse(
            items=catalog.items(top[0], scores[0]),
            degraded=False,
            model_versions=self.versions(),
        )
