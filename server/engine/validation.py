"""Inputs checked against a model's config before they are queued: names, dtypes, shapes and
the batch bound. Every message names the field, so each failure is a 400 a client can act on."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from server.contract.dtypes import V2_TO_NUMPY
from server.contract.model_config import ModelConfig, TensorConfig
from server.errors import BadRequest

__all__ = ["check_inputs"]


def check_inputs(
    config: ModelConfig,
    inputs: Mapping[str, np.ndarray],
    where: str = "inputs",
    max_dynamic_dim: int = 8192,
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
        _check_bounds(spec, arr, dims, f"{where}.{name}", max_dynamic_dim)
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


def _check_bounds(
    spec: TensorConfig, arr: np.ndarray, dims: tuple[int, ...], where: str, max_dynamic_dim: int
) -> None:
    """The config's value range and maximum dynamic dims (what the model can take: vocabulary,
    catalogue, position table); -1 dims without a bound of their own get `max_dynamic_dim`."""
    if spec.dynamic_axes:
        sizes = [h for w, h in zip(spec.dims, dims, strict=True) if w == -1]
        bounds = spec.max_dims or [max_dynamic_dim] * len(sizes)
        for size, bound in zip(sizes, bounds, strict=True):
            if size > bound:
                raise BadRequest(
                    f"{where}: dynamic dim of {size} exceeds the model's maximum of {bound}"
                )
    lo, hi = spec.min_value, spec.max_value
    if (lo is None and hi is None) or arr.size == 0 or arr.dtype.kind not in "iuf":
        return
    values = arr[arr != spec.pad_value] if spec.dynamic_axes else arr
    if values.size == 0:
        return
    if lo is not None and values.min() < lo or hi is not None and values.max() > hi:
        raise BadRequest(
            f"{where}: values must lie in [{lo}, {hi}] (pad {spec.pad_value} allowed); "
            f"got [{values.min()}, {values.max()}]"
        )


def _v2(dtype: np.dtype) -> str:
    from server.contract.dtypes import numpy_to_v2

    try:
        return numpy_to_v2(dtype)
    except KeyError:
        return str(dtype)
