"""Review classification: texts -> tokens -> the task's head (batched) -> label and scores."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

import numpy as np

from server.budget import Budget
from server.contract.pipelines import ClassifySpec, artifact_path
from server.errors import BadRequest
from server.pipelines.base import InferModel, ModelSource, infer_within
from server.pipelines.cpu_work import cpu_work
from server.pipelines.text import TextEncoder
from server.schemas.v1 import ClassifyRequest, ClassifyResponse, ClassifyResult

__all__ = ["ClassifyPipeline"]


class ClassifyPipeline:
    kind: ClassVar[str] = "classify"

    def __init__(
        self, heads: dict[str, tuple[InferModel, list[str]]], encoder: TextEncoder
    ) -> None:
        self.heads = heads  # task -> (model, labels)
        self.encoder = encoder

    @classmethod
    def load(cls, spec: ClassifySpec, folder: Path, models: ModelSource) -> ClassifyPipeline:
        encoder = TextEncoder(artifact_path(folder, spec.tokenizer), spec.max_tokens)
        heads = {h.task: (models.get_model(h.model), list(h.labels)) for h in spec.heads}
        return cls(heads, encoder)

    def versions(self) -> dict[str, str]:
        return {m.name: str(m.version) for m, _ in self.heads.values()}

    async def run(self, request: ClassifyRequest, budget: Budget) -> ClassifyResponse:
        head = self.heads.get(request.task)
        if head is None:
            raise BadRequest(
                f"task: '{request.task}' is not served; choose from {sorted(self.heads)}"
            )
        model, labels = head
        texts = list(request.texts)
        with budget.stage("tokenize"):
            ids = await cpu_work().run("tokenize", sum(map(len, texts)), self.encoder.ids, texts)
        budget.check("model")
        # a request may carry more texts than the model's max_batch_size: split, run together
        step = model.max_batch_size or len(ids)
        with budget.stage("model"):
            parts = await asyncio.gather(
                *(
                    infer_within(model, {"input_ids": ids[i : i + step]}, budget, "texts")
                    for i in range(0, len(ids), step)
                )
            )
        logits = np.concatenate([r.outputs["logits"] for r in parts]).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        results = [
            ClassifyResult(labels[int(row.argmax())], dict(zip(labels, row.tolist(), strict=True)))
            for row in probs
        ]
        return ClassifyResponse(results=results, model_versions={model.name: str(model.version)})
