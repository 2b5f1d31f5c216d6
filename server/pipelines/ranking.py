"""The recommend pipeline's ranking stage: the ranker model, its feature spec and tables (read
from the ranker's own version folder: they belong to that model version), and the same assembly
kernel that built the training features."""

from __future__ import annotations

import numpy as np

from kernels import FeatureSpec, FeatureTables, assemble_features
from server.contract.pipelines import RankingSpec, artifact_path
from server.errors import ModelLoadError
from server.pipelines.base import InferModel
from server.pipelines.catalog import load_json, load_npy

__all__ = ["Ranking"]


class Ranking:
    def __init__(self, spec: RankingSpec, model: InferModel) -> None:
        folder = model.folder
        self.spec = spec
        self.model = model
        try:
            self.features_spec = FeatureSpec.load(artifact_path(folder, spec.feature_spec))
            t = spec.tables
            self.tables = FeatureTables(
                **{f: load_npy(folder, getattr(t, f)) for f in t.__struct_fields__}
            )
            ids = load_json(folder, spec.user_ids)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(
                f"{model.name}/{model.version}: ranking artifacts: {exc}"
            ) from None
        # row u + 1 is user ids[u]; row `unknown_user_row` stands for everybody else
        self.users = {str(uid): row for row, uid in enumerate(ids, start=1)}

    def features(
        self, candidates: np.ndarray, history: list[int], user_id: str | None
    ) -> np.ndarray:
        """float32 [len(candidates), n_features] for one user."""
        unknown = self.spec.unknown_user_row
        row = self.users.get(user_id, unknown) if user_id is not None else unknown
        recent = np.asarray(history[-self.spec.recent_items :], dtype=np.int64)
        step = self.spec.recent_age_step_s
        ages = ((len(recent) - np.arange(len(recent))) * step).astype(np.float32)
        out = np.empty((len(candidates), self.features_spec.n_features), np.float32)
        return assemble_features(
            self.features_spec,
            self.tables,
            np.asarray([row], np.int64),
            np.asarray([0, len(candidates)], np.int64),
            candidates.astype(np.int64),
            np.asarray([0, len(recent)], np.int64),
            recent,
            ages,
            out,
        )
