"""Semantic product search: query -> tokens -> search encoder (batched) -> exact inner-product
top-k over the product embeddings (Numba kernel) with price filters."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from kernels import ItemMatrix, topk_inner_product
from server.budget import Budget
from server.contract.pipelines import SearchSpec, artifact_path
from server.pipelines.base import InferModel, ModelSource
from server.pipelines.catalog import Catalog, load_embeddings
from server.pipelines.text import TextEncoder
from server.schemas.v1 import SearchFilters, SearchRequest, SearchResponse

__all__ = ["SearchPipeline"]


class SearchPipeline:
    kind: ClassVar[str] = "search"

    def __init__(
        self,
        encoder: InferModel,
        catalog: Catalog,
        items: ItemMatrix,
        text: TextEncoder,
        own: dict[str, str],
    ) -> None:
        self.own = own  # this pipeline's name and version: answers name the catalogue they used
        self.encoder = encoder
        self.catalog = catalog
        self.items = items
        self.text = text

    @classmethod
    def load(cls, spec: SearchSpec, folder: Path, models: ModelSource) -> SearchPipeline:
        catalog = Catalog(folder, spec.catalog)
        items = load_embeddings(folder, spec.product_embeddings, len(catalog))
        text = TextEncoder(artifact_path(folder, spec.tokenizer), spec.max_tokens)
        own = {folder.parent.name: folder.name}
        return cls(models.get_model(spec.encoder), catalog, items, text, own)

    def versions(self) -> dict[str, str]:
        return {**self.own, self.encoder.name: str(self.encoder.version)}

    async def run(self, request: SearchRequest, budget: Budget) -> SearchResponse:
        f = request.filters or SearchFilters()
        mask = self.catalog.price_mask(f.price_min, f.price_max)
        with budget.stage("tokenize"):
            ids = self.text.ids([request.query])
        budget.check("encode")
        with budget.stage("encode"):
            res = await self.encoder.infer(
                {"input_ids": ids},
                deadline_ns=budget.deadline_ns,
                request_id=budget.request_id,
                where="query",
            )
        budget.check("retrieve")
        with budget.stage("retrieve"):
            q = res.outputs["embedding"].astype(np.float32)
            top, scores = topk_inner_product(q, self.items, request.k, item_mask=mask, n_threads=1)
        return SearchResponse(
            items=self.catalog.items(top[0], scores[0]),
            degraded=False,
            model_versions=self.versions(),
        )
