"""Review classification: texts -> tokens -> the task's head (batched) -> label and scores."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server.budget import Budget
from server.engine.model import LoadedModel
from server.pipelines.text import TextEncoder

__all__ = ["ClassifyPipeline"]


@dataclass(slots=True)
class Classified:
    label: str
    scores: dict[str, float]


class ClassifyPipeline:
    def __init__(self, model: LoadedModel, folder: Path) -> None:
        self.model = model
        params = model.config.parameters
        self.labels: list[str] = json.loads(
            (folder / params.get("labels", "labels.json")).read_text()
        )
        self.encoder = TextEncoder(
            folder / params.get("tokenizer", "tokenizer.json"), int(params.get("max_tokens", 128))
        )

    async def classify(self, texts: list[str], budget: Budget) -> list[Classified]:
        with budget.stage("tokenize"):
            ids = self.encoder.ids(texts)
        budget.check("model")
        # a request may carry more texts than the model's max_batch_size: split, run together
        step = self.model.config.max_batch_size or len(texts)
        with budget.stage("model"):
            parts = await asyncio.gather(
                *(
                    self.model.infer(
                        {"input_ids": ids[i : i + step]},
                        deadline_ns=budget.deadline_ns,
                        where="texts",
                    )
                    for i in range(0, len(texts), step)
                )
            )
        logits = np.concatenate([r.outputs["logits"] for r in parts]).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return [
            Classified(
                self.labels[int(row.argmax())],
                {lab: float(p) for lab, p in zip(self.labels, row, strict=True)},
            )
            for row in probs
        ]
