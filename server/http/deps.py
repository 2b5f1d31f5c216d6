"""The app-scoped objects routes receive, as Litestar dependencies. Each is provided once per app
(`Provide(use_cache=True)`, see server/app.py) and marked `skip_validation`: injection converts
nothing and does no per-request work."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Dependency

from server.engine.repository import ModelRepository
from server.http.admission import Admission
from server.metrics import Metrics
from server.pipelines.registry import PipelineRegistry
from server.settings import Settings

__all__ = ["AdmissionDep", "MetricsDep", "PipelinesDep", "RepositoryDep", "SettingsDep"]

RepositoryDep = Annotated[ModelRepository, Dependency(skip_validation=True)]
PipelinesDep = Annotated[PipelineRegistry, Dependency(skip_validation=True)]
SettingsDep = Annotated[Settings, Dependency(skip_validation=True)]
MetricsDep = Annotated[Metrics, Dependency(skip_validation=True)]
AdmissionDep = Annotated[Admission, Dependency(skip_validation=True)]
