"""What routes receive: one app-scoped `Services` bundle, given by Litestar's `Provide` (cached,
see server/app.py) and marked `skip_validation`, so injection converts nothing.

One dependency and not five: Litestar resolves several dependencies of a route concurrently in
an anyio task group, which cost ~170 us per request here (measured in-process on the V2 infer
route: 1,100 us per request against 760 before the redesign); one dependency is awaited
directly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from litestar.params import Dependency

from server.engine.repository import ModelRepository
from server.http.admission import Admission
from server.http.body import BodyReads
from server.metrics import Metrics
from server.pipelines.registry import PipelineRegistry
from server.settings import Settings

if TYPE_CHECKING:
    from server.http.siblings import Siblings

__all__ = ["Services", "ServicesDep"]


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    metrics: Metrics
    repository: ModelRepository
    pipelines: PipelineRegistry
    admission: Admission
    bodies: BodyReads  # request bodies, read within `body_timeout_s`
    # the other workers of a multi-worker server (server/http/siblings.py); None with one
    siblings: Siblings | None = None


ServicesDep = Annotated[Services, Dependency(skip_validation=True)]
