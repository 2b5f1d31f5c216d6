"""Purchase-intent score (`/v1/score`, task purchase_intent): session features -> the additive
student -> probability, label at the spec's threshold, and exact per-feature contributions (logit
units). `Standardizer` and `explained` are shared with the order-line score (order_score.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import msgspec
import numpy as np

from server.batching.envelope import BatchResult
from server.budget import Budget
from server.contract.pipelines import ScorePreprocessing, ScoreSpec, artifact_path
from server.errors import BadRequest, ModelLoadError
from server.pipelines.base import InferModel, ModelSource, infer_within
from server.schemas.v1 import Contribution, ScoreRequest, ScoreResponse

__all__ = ["ScorePipeline", "Standardizer", "explained", "read_preprocessing"]


def read_preprocessing(model: InferModel, name: str) -> ScorePreprocessing:
    """The model's own `preprocess.json` (in its version folder): a reload of the model and its
    preprocessing can never disagree."""
    path = artifact_path(model.folder, name)
    try:
        return msgspec.json.decode(path.read_bytes(), type=ScorePreprocessing)
    except (OSError, msgspec.MsgspecError) as exc:
        raise ModelLoadError(f"{model.name}/{model.version}/{name}: {exc}") from None


class Standardizer:
    """A `ScorePreprocessing` applied to one row, as export's `score_family.transform` does."""

    def __init__(self, pre: ScorePreprocessing) -> None:
        self.numeric = pre.numeric
        self.log1p = np.array([c in set(pre.log1p) for c in pre.numeric])
        self.mean = np.asarray(pre.mean, np.float64)
        self.std = np.asarray(pre.std, np.float64)
        self.categorical = pre.categorical
        self.vocab = {c: {v: i for i, v in enumerate(vals)} for c, vals in pre.vocab.items()}
        self.bias = pre.bias
        self.feature_names = pre.contributions

    def inputs(self, num: np.ndarray, categories: dict[str, str]) -> dict[str, np.ndarray]:
        """Raw numerics float64 [numeric] (finite) and category strings -> the model's inputs
        (an unseen category is the <unk> code 0)."""
        num = np.where(self.log1p, np.log1p(np.maximum(num, 0.0)), num)
        x = ((num - self.mean) / self.std).astype(np.float32)[None, :]
        cat = np.array(
            [[self.vocab[c].get(categories[c], 0) for c in self.categorical]], dtype=np.int64
        )
        return {"numeric": x, "categorical": cat}


def explained(
    res: BatchResult, std: Standardizer, threshold: float, versions: dict[str, str]
) -> ScoreResponse:
    """The answer: probability, decision at `threshold`, contributions largest first."""
    prob = float(res.outputs["probability"][0, 0])
    contrib = res.outputs["contributions"][0].tolist()
    pairs = sorted(zip(std.feature_names, contrib, strict=True), key=lambda p: -abs(p[1]))
    return ScoreResponse(
        probability=prob,
        label=prob >= threshold,
        threshold=threshold,
        base=std.bias,
        explanation=[Contribution(f, c) for f, c in pairs],
        model_versions=versions,
    )


class ScorePipeline:
    kind: ClassVar[str] = "score"

    def __init__(self, spec: ScoreSpec, model: InferModel, pre: ScorePreprocessing) -> None:
        self.spec = spec
        self.model = model
        self.threshold = spec.threshold
        self.std = Standardizer(pre)

    @classmethod
    def load(cls, spec: ScoreSpec, folder: Path, models: ModelSource) -> ScorePipeline:
        model = models.get_model(spec.model)
        return cls(spec, model, read_preprocessing(model, spec.preprocess))

    def versions(self) -> dict[str, str]:
        return {self.model.name: str(self.model.version)}

    def features(self, session: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        num = np.array([float(session[n]) for n in self.std.numeric], np.float64)
        if not np.isfinite(num).all():
            bad = self.std.numeric[int(np.argmin(np.isfinite(num)))]
            raise BadRequest(f"session.{bad}: must be a finite number")
        cats = {c: _category(session[c]) for c in self.std.categorical}
        inputs = self.std.inputs(num, cats)
        return inputs["numeric"], inputs["categorical"]

    async def run(self, request: ScoreRequest, budget: Budget) -> ScoreResponse:
        if request.session is None:
            raise BadRequest(f"$.session: required for task '{request.task}'")
        with budget.stage("features"):
            x, cat = self.features(msgspec.structs.asdict(request.session))
        budget.check("model")
        with budget.stage("model"):
            inputs = {"numeric": x, "categorical": cat}
            res = await infer_within(self.model, inputs, budget, "session")
        return explained(res, self.std, self.threshold, self.versions())


def _category(value: Any) -> str:
    # the dataset's integer codes (Browser, Region, ...) are vocabulary strings
    if isinstance(value, bool):
        return str(value).upper()
    return str(value)
