"""The product catalogue a retrieval pipeline answers with: ids, titles, prices, and the price
mask that filters use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from server.errors import BadRequest

__all__ = ["Catalog"]


class Catalog:
    def __init__(self, folder: Path, params: dict) -> None:
        self.ids: list[str] = json.loads((folder / params["item_ids"]).read_text())
        self.titles: list[str] = json.loads((folder / params["item_titles"]).read_text())
        self.prices = np.load(folder / params["item_prices"], allow_pickle=False).astype(np.float32)
        if not (len(self.ids) == len(self.titles) == len(self.prices)):
            raise ValueError(
                f"{folder}: item_ids ({len(self.ids)}), item_titles ({len(self.titles)}) and "
                f"item_prices ({len(self.prices)}) differ in length"
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

    def items(self, ids: np.ndarray, scores: np.ndarray) -> list[tuple[str, str, float, float]]:
        out = []
        for i, s in zip(ids.tolist(), scores.tolist(), strict=True):
            if i < 0:
                break  # fewer eligible items than k
            out.append((self.ids[i], self.titles[i], float(self.prices[i]), float(s)))
        return out
