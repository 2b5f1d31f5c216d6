"""What a pipeline is, and what it may ask of the engine.

A pipeline is built from its spec (server/contract/pipelines.py), its version folder and a
`ModelSource`, all at load time: artifacts are read and checked there, never inside a request.
It holds the model versions it was built over; the registry rebuilds it when one changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from server.batching.envelope import BatchResult
from server.budget import Budget

__all__ = ["InferModel", "ModelSource", "Pipeline", "infer_within"]


class InferModel(Protocol):
    """The slice of a served model version that pipelines use (the engine's `LoadedModel`,
    or a fake in tests)."""

    name: str
    version: int
    folder: Path  # the version folder: model-bound artifacts are read from here

    @property
    def max_batch_size(self) -> int: ...

    def expected_ns(self, rows: int) -> int: ...

    def is_overloaded(self) -> bool:
        """Its queue is full (admission refuses the pipeline's requests before their body)."""
        ...

    async def infer(
        self,
        inputs: dict[str, np.ndarray],
        *,
        deadline_ns: int = 0,
        request_id: str = "",
        where: str = "inputs",
    ) -> BatchResult: ...


async def infer_within(
    model: InferModel, inputs: dict[str, np.ndarray], budget: Budget, where: str
) -> BatchResult:
    """`model.infer` by the request's deadline, under its request id; `where` names the request
    field the inputs came from (in errors)."""
    return await model.infer(
        inputs, deadline_ns=budget.deadline_ns, request_id=budget.request_id, where=where
    )


class ModelSource(Protocol):
    def get_model(self, name: str) -> InferModel:
        """The served version; raises ModelNotFound / ModelNotReady."""
        ...


class Pipeline(Protocol):
    """One shop task. `load` is blocking (run in a thread) and raises ModelLoadError or
    ValueError naming the artifact; `run` answers one decoded request within `budget`."""

    kind: ClassVar[str]

    @classmethod
    def load(cls, spec: Any, folder: Path, models: ModelSource) -> Pipeline: ...

    def versions(self) -> dict[str, str]:
        """Model name -> version this pipeline was built over (`model_versions` in answers)."""
        ...

    async def run(self, request: Any, budget: Budget) -> Any: ...
