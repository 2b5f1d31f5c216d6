"""Inputs checked against a model's config before they are queued: names, dtypes, shapes and
the batch bound. Every message names the field, so each failure is a 400 a client can act on."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from server.contract.dtypes import V2_TO_NUMPY
from server.contract.model_config import ModelConfig
from server.errors import BadRequest

__all__ = ["check_inputs"]


def check_inputs(
    config: ModelConfig, inputs: Mapping[str, np.ndarray], where: str = "inputs"
) -> int:
    """Raise BadRequest unless `inputs` fit `config`; return the number of batch rows (1 for
    models without batching)."""
    expected = {t.name: t for t in config.input}
    extra = sorted(set(inputs) - set(expected))
    if extra:
        raise BadRequest(
            f"{where}: unexpected input(s) {extra} for model '{config.name}'; "
            f"it takes {sorted(expected)}"
        )
    missing = sorted(set(expected) - set(inputs))
    if missing:
        raise BadRequest(f"{where}: missing input(s) {missing} for model '{config.name}'")
    batched = config.max_batch_size > 0
    rows: int | None = None
    for name, spec in expected.items():
        arr = inputs[name]
        want = V2_TO_NUMPY[spec.datatype]
        if arr.dtype != want and not (want == np.dtype(object) and arr.dtype.kind in "OSU"):
            raise BadRequest(
                f"{where}.{name}: datatype {_v2(arr.dtype)} does not match the model's {spec.datatype}"
            )
        dims = arr.shape[1:] if batched else arr.shape
        if batched and arr.ndim == 0:
            raise BadRequest(f"{where}.{name}: shape [] lacks the batch dimension")
        if len(dims) != len(spec.dims) or any(
            w != -1 and w != h for w, h in zip(spec.dims, dims, strict=False)
        ):
            want_shape = (["-1"] if batched else []) + [str(d) for d in spec.dims]
            raise BadRequest(
                f"{where}.{name}: shape {list(arr.shape)} does not match the model's "
                f"[{', '.join(want_shape)}]"
            )
        if any(h == 0 for h in dims):
            raise BadRequest(f"{where}.{name}: shape {list(arr.shape)} has an empty dimension")
        if batched:
            n = arr.shape[0]
            if n < 1:
                raise BadRequest(f"{where}.{name}: batch dimension is 0")
            if n > config.max_batch_size:
                raise BadRequest(
                    f"{where}.{name}: batch size {n} exceeds max_batch_size {config.max_batch_size} "
                    f"of model '{config.name}'"
                )
            if rows is not None and n != rows:
                raise BadRequest(
                    f"{where}.{name}: batch size {n} differs from other inputs ({rows})"
                )
            rows = n
    return rows or 1


def _v2(dtype: np.dtype) -> str:
    from server.contract.dtypes import numpy_to_v2

    try:
        return numpy_to_v2(dtype)
    except KeyError:
        return str(dtype)
