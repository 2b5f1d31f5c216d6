"""A synthetic catalogue and traffic generator for scale tests (up to 1M items, 100k users).

Deterministic for a given seed. Items belong to categories whose centroids are random unit
vectors; an item's embedding is its centroid plus noise, normalised. Popularity is Zipf-like.
Each user prefers a few categories and buys items drawn by popularity within them. This is for
benchmarks and load tests only: model quality is measured on the real data.

    shopserve export synthetic --items 1000000 --users 100000 --out synth.npz [--seed 0]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SyntheticShop", "generate", "main"]

_WORDS = [
    "red",
    "white",
    "blue",
    "heart",
    "star",
    "vintage",
    "glass",
    "metal",
    "wooden",
    "paper",
    "lantern",
    "candle",
    "holder",
    "mug",
    "bag",
    "box",
    "card",
    "set",
    "tin",
    "sign",
    "clock",
    "frame",
    "cushion",
    "garland",
    "bottle",
    "jar",
    "bowl",
    "plate",
    "tray",
    "light",
]


@dataclass
class SyntheticShop:
    item_embeddings: np.ndarray  # float32 [n_items, dim], unit rows
    item_category: np.ndarray  # int64 [n_items]
    item_price: np.ndarray  # float32 [n_items]
    item_popularity: np.ndarray  # float32 [n_items], expected share of purchases
    item_titles: list[str]
    # int64 [n_users + 1]: user u's history is history[indptr[u]:indptr[u + 1]]
    user_indptr: np.ndarray
    history: np.ndarray  # int64 item indices, oldest first per user

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            item_embeddings=self.item_embeddings,
            item_category=self.item_category,
            item_price=self.item_price,
            item_popularity=self.item_popularity,
            item_titles=np.array(self.item_titles),
            user_indptr=self.user_indptr,
            history=self.history,
        )


def _items(rng: np.random.Generator, n_items: int, dim: int, n_categories: int):
    """Categories, unit embeddings around their centroids, Zipf-like popularity, prices, titles."""
    centroids = rng.standard_normal((n_categories, dim)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    cat = rng.integers(0, n_categories, n_items).astype(np.int64)
    noise = rng.standard_normal((n_items, dim)).astype(np.float32)
    emb = centroids[cat] + 0.5 / np.sqrt(dim) * noise
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    pop = rng.permutation(pop / pop.sum()).astype(np.float32)
    price = np.round(np.exp(rng.normal(1.0, 0.8, n_items)), 2).astype(np.float32)
    words = np.array(_WORDS)
    w = rng.integers(0, len(words), (n_items, 3))
    titles = [f"{a} {b} {c} {i}" for i, (a, b, c) in enumerate(words[w])]
    return emb, cat, pop, price, titles


def _histories(
    rng: np.random.Generator,
    cat: np.ndarray,
    pop: np.ndarray,
    n_users: int,
    mean_history: int,
    n_categories: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per user: 3 preferred categories; 80% of purchases inside them, drawn by popularity."""
    n_items = len(cat)
    lens = np.maximum(1, rng.poisson(mean_history, n_users))
    indptr = np.r_[0, np.cumsum(lens)].astype(np.int64)
    order = np.argsort(cat, kind="stable")
    starts = np.searchsorted(cat[order], np.arange(n_categories + 1))
    cum = np.cumsum(pop[order])
    history = np.empty(indptr[-1], np.int64)
    prefs = rng.integers(0, n_categories, (n_users, 3))
    user_of = np.repeat(np.arange(n_users), lens)
    inside = rng.random(len(history)) < 0.8
    c = prefs[user_of, rng.integers(0, 3, len(history))]
    lo, hi = starts[c], starts[c + 1]
    base = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
    u = base + rng.random(len(history)) * (cum[np.maximum(hi - 1, 0)] - base)
    pos = np.clip(np.searchsorted(cum, u), lo, np.maximum(hi - 1, lo))
    empty = hi <= lo
    anywhere = np.minimum(np.searchsorted(np.cumsum(pop), rng.random(len(history))), n_items - 1)
    history[:] = np.where(inside & ~empty, order[np.minimum(pos, n_items - 1)], anywhere)
    return indptr, history


def generate(
    n_items: int = 100_000,
    n_users: int = 10_000,
    dim: int = 32,
    n_categories: int = 64,
    mean_history: int = 20,
    seed: int = 0,
) -> SyntheticShop:
    if not (1 <= n_items <= 1_000_000 and 1 <= n_users <= 100_000):
        raise ValueError("n_items must be in [1, 1e6] and n_users in [1, 1e5]")
    rng = np.random.default_rng(seed)
    emb, cat, pop, price, titles = _items(rng, n_items, dim, n_categories)
    indptr, history = _histories(rng, cat, pop, n_users, mean_history, n_categories)
    return SyntheticShop(emb, cat, price, pop, titles, indptr, history)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="shopserve export synthetic", description=__doc__.splitlines()[0]
    )
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help=".npz file to write")
    a = p.parse_args(argv)
    shop = generate(a.items, a.users, a.dim, seed=a.seed)
    shop.save(a.out)
    print(
        f"synthetic shop: {a.items} items, {a.users} users, {len(shop.history)} events -> {a.out}"
    )
    return 0
