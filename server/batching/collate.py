"""Joining requests into one batch and splitting the outputs back: concatenation along the batch
dim, padding of dynamic non-batch dims to the longest in the batch, slicing outputs back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["collate", "split_outputs"]


def collate(
    requests: Sequence[Mapping[str, np.ndarray]],
    pad_values: Mapping[str, int | float],
) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, ...]]]:
    """Concatenate each input over `requests` (arrays shaped [rows, *dims]).

    Inputs named in `pad_values` may differ in their non-batch dims: each is padded at the end of
    every axis to the largest size in the batch. Returns the batch and, for padded inputs, the
    padded shape (without the batch dim) used to slice outputs back.
    """
    batch: dict[str, np.ndarray] = {}
    padded: dict[str, tuple[int, ...]] = {}
    for name in requests[0]:
        parts = [r[name] for r in requests]
        if len(parts) == 1:
            batch[name] = parts[0]
            if name in pad_values:
                padded[name] = parts[0].shape[1:]
            continue
        if name in pad_values:
            target = tuple(max(p.shape[ax] for p in parts) for ax in range(1, parts[0].ndim))
            padded[name] = target
            rows = sum(p.shape[0] for p in parts)
            out = np.full((rows, *target), pad_values[name], dtype=parts[0].dtype)
            offset = 0
            for p in parts:
                index = (slice(offset, offset + p.shape[0]),) + tuple(
                    slice(0, n) for n in p.shape[1:]
                )
                out[index] = p
                offset += p.shape[0]
            batch[name] = out
        else:
            batch[name] = np.concatenate(parts, axis=0)
    return batch, padded


def split_outputs(
    outputs: Mapping[str, np.ndarray],
    requests: Sequence[Mapping[str, np.ndarray]],
    padded: Mapping[str, tuple[int, ...]],
    dynamic_outputs: Mapping[str, tuple[int, ...]],
) -> list[dict[str, np.ndarray]]:
    """Slice each output back into per-request pieces.

    An output axis that is dynamic in the config (`dynamic_outputs[name]`: axis positions without
    the batch dim) and whose size equals a padded input axis is cut back to the request's own
    length on that input axis (token-level outputs of a padded sequence).
    """
    # padded length -> (input name, axis) so output axes can find the input they follow
    by_length: dict[int, tuple[str, int]] = {}
    for name, shape in padded.items():
        for ax, n in enumerate(shape):
            by_length.setdefault(n, (name, ax))
    results: list[dict[str, np.ndarray]] = [{} for _ in requests]
    offset = 0
    for i, req in enumerate(requests):
        rows = next(iter(req.values())).shape[0]
        for name, value in outputs.items():
            piece = value[offset : offset + rows]
            for ax in dynamic_outputs.get(name, ()):
                if ax + 1 >= piece.ndim:
                    continue
                source = by_length.get(piece.shape[ax + 1])
                if source is not None:
                    own = req[source[0]].shape[source[1] + 1]
                    index = [slice(None)] * piece.ndim
                    index[ax + 1] = slice(0, own)
                    piece = piece[tuple(index)]
            results[i][name] = piece
        offset += rows
    return results
