"""The product catalogue a retrieval pipeline answers with (ids, titles, prices, the price mask
that filters use), and its embeddings, checked against each other at load time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kernels import ItemMatrix
from server.contract.pipelines import CatalogFiles, artifact_path
from server.errors import BadRequest, ModelLoadError
from server.schemas.v1 import Item

if TYPE_CHECKING:
    from server.pipelines.base import InferModel

__all__ = ["Catalog", "Retrieval", "load_embeddings", "load_json", "load_npy"]


def load_npy(folder: Path, name: str) -> np.ndarray:
    """The artifact `name` of `folder` as an array, memory-mapped: every worker reads the one
    copy in the page cache. Copy-on-write ("c", not "r"): the pages stay shared unless written,
    and the arrays keep the writeable type that the Numba kernels were compiled (and warmed) for.
    A missing or unreadable file is a ModelLoadError naming it. Artifacts are replaced by
    publishing a new folder (a rename), never rewritten in place under a running server."""
    path = artifact_path(folder, name)
    try:
        return np.asarray(np.load(path, mmap_mode="c", allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: {exc}") from None


def load_json(folder: Path, name: str) -> Any:
    """The JSON artifact `name` of `folder`; a missing or malformed file names itself."""
    path = artifact_path(folder, name)
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: {exc}") from None


class Catalog:
    def __init__(self, folder: Path, files: CatalogFiles) -> None:
        self.ids: list[str] = load_json(folder, files.item_ids)
        self.titles: list[str] = load_json(folder, files.item_titles)
        prices = load_npy(folder, files.item_prices)
        self.prices = prices.astype(np.float32, copy=False)
        if not (len(self.ids) == len(self.titles) == len(self.prices)):
            raise ModelLoadError(
                f"{folder}: {files.item_ids} ({len(self.ids)}), {files.item_titles} "
                f"({len(self.titles)}) and {files.item_prices} ({len(self.prices)}) differ in length"
            )
        self.index = {item: i for i, item in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def price_mask(self, price_min: float | None, price_max: float | None) -> np.ndarray | None:
        """Eligible items under the price filters; None when there is no filter."""
        if price_min is None and price_max is None:
            return None
        if price_min is not None and price_max is not None and price_min > price_max:
            raise BadRequest(
                f"filters.price_min ({price_min}) is above filters.price_max ({price_max})"
            )
        mask = np.ones(len(self.prices), dtype=np.bool_)
        if price_min is not None:
            mask &= self.prices >= price_min
        if price_max is not None:
            mask &= self.prices <= price_max
        return mask

    def items(self, ids: np.ndarray, scores: np.ndarray) -> list[Item]:
        out = []
        for i, s in zip(ids.tolist(), scores.tolist(), strict=True):
            if i < 0:
                break  # fewer eligible items than k
            out.append(Item(self.ids[i], self.titles[i], float(self.prices[i]), float(s)))
        return out


def load_embeddings(folder: Path, name: str, n_items: int) -> ItemMatrix:
    """float32 [n_items, dim] embeddings aligned with the catalogue's rows."""
    emb = load_npy(folder, name)
    if emb.ndim != 2 or emb.shape[0] != n_items:
        raise ModelLoadError(
            f"{folder}: {name} has shape {list(emb.shape)}; expected [{n_items}, dim] "
            "(one row per catalogue item)"
        )
    return ItemMatrix.from_array(emb.astype(np.float32, copy=False))


@dataclass(frozen=True, eq=False)
class Retrieval:
    """What a retrieval pipeline (search, recommend) answers from: the catalogue, its item
    embeddings, and the pipeline's own name and version (answers name the catalogue they used)."""

    catalog: Catalog
    items: ItemMatrix
    own: dict[str, str]

    @classmethod
    def load(cls, folder: Path, files: CatalogFiles, embeddings: str) -> Retrieval:
        """The catalogue of the pipeline version `folder` and its embeddings, checked together."""
        catalog = Catalog(folder, files)
        items = load_embeddings(folder, embeddings, len(catalog))
        return cls(catalog, items, {folder.parent.name: folder.name})

    def versions(self, *models: InferModel) -> dict[str, str]:
        """Name -> version of this pipeline and of `models` (`model_versions` in answers)."""
        return {**self.own, **{m.name: str(m.version) for m in models}}
