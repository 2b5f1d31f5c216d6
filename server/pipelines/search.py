"""Semantic product search: query -> tokens -> search encoder (batched) -> exact inner-product
top-k over the product embeddings (Numba kernel) with price filters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kernels import ItemMatrix, topk_inner_product
from server.budget import Budget
from server.engine.model import LoadedModel
from server.pipelines.catalog import Catalog
from server.pipelines.text import TextEncoder

__all__ = ["SearchPipeline"]


class SearchPipeline:
    """The `search` pipeline folder: `parameters.encoder` names the encoder model."""

    def __init__(self, config: Any, version: int, folder: Path, repository: Any) -> None:
        p = config.parameters
        self.name = config.name
        self.config = config
        self.version = version
        self.repository = repository
        self.encoder_name: str = p["encoder"]
        self.catalog = Catalog(folder, p)
        emb = np.load(folder / p["product_embeddings"], allow_pickle=False).astype(np.float32)
        if emb.shape[0] != len(self.catalog):
            raise ValueError(
                f"{folder}: {emb.shape[0]} product embeddings for {len(self.catalog)} items"
            )
        self.items = ItemMatrix.from_array(emb)
        self.text = TextEncoder(
            folder / p.get("tokenizer", "tokenizer.json"), int(p.get("max_tokens", 64))
        )

    def encoder(self) -> LoadedModel:
        return self.repository.get_model(self.encoder_name)

    async def search(
        self, query: str, k: int, price_min: float | None, price_max: float | None, budget: Budget
    ) -> tuple[list[tuple[str, str, float, float]], dict[str, str]]:
        encoder = self.encoder()
        mask = self.catalog.price_mask(price_min, price_max)
        with budget.stage("tokenize"):
            ids = self.text.ids([query])
        budget.check("encode")
        with budget.stage("encode"):
            res = await encoder.infer(
                {"input_ids": ids}, deadline_ns=budget.deadline_ns, where="query"
            )
        budget.check("retrieve")
        with budget.stage("retrieve"):
            q = res.outputs["embedding"].astype(np.float32)
            top_ids, top_scores = topk_inner_product(q, self.items, k, item_mask=mask, n_threads=1)
        versions = {self.name: str(self.version), encoder.name: str(encoder.version)}
        return self.catalog.items(top_ids[0], top_scores[0]), versions
