"""Which repository models each shop endpoint uses, and the pipelines built over them. A
pipeline is built once per served model version (artifacts read from its version folder) and
rebuilt when the repository swaps in a new version."""

from __future__ import annotations

from typing import Any

from server.errors import ModelNotReady
from server.engine.model import LoadedModel
from server.pipelines.classify import ClassifyPipeline
from server.pipelines.recommend import RecommendPipeline
from server.pipelines.score import ScorePipeline
from server.pipelines.search import SearchPipeline
from server.engine.repository import ModelRepository

__all__ = ["PipelineRegistry"]


class PipelineRegistry:
    def __init__(self, repository: ModelRepository, models: dict[str, str]) -> None:
        self.repository = repository
        self.models = models  # endpoint role -> model name
        self._built: dict[tuple[str, int], Any] = {}

    def _model(self, role: str) -> LoadedModel:
        return self.repository.get_model(self.models[role])

    def _cached(self, role: str, model: LoadedModel, build: Any) -> Any:
        key = (role, id(model))  # a reload swaps in a new LoadedModel object
        pipeline = self._built.get(key)
        if pipeline is None:
            folder = self.repository.root / model.name / str(model.version)
            pipeline = build(model, folder)
            self._built = {k: v for k, v in self._built.items() if k[0] != role}
            self._built[key] = pipeline
        return pipeline

    def score(self) -> ScorePipeline:
        model = self._model("score")
        return self._cached("score", model, ScorePipeline)

    def classify(self, task: str) -> ClassifyPipeline:
        role = f"classify_{task}"
        if role not in self.models:
            self.models[role] = role
        model = self._model(role)
        return self._cached(role, model, ClassifyPipeline)

    def search(self) -> SearchPipeline:
        return self._pipeline("search", SearchPipeline)

    def recommend(self) -> RecommendPipeline:
        return self._pipeline("recommend", RecommendPipeline)

    def _pipeline(self, role: str, kind: type) -> Any:
        name = self.models.get(role, role)
        served = self.repository.get(name)
        if not isinstance(served, kind):
            raise ModelNotReady(f"'{name}' is not a {role} pipeline")
        return served
