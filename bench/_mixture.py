"""The structured data the kernel benchmark measures recall on: a Gaussian mixture.

Random Gaussian vectors have no structure and make every ANN index look bad; shop embeddings
cluster (categories, brands). Parameters, all fixed here:
- 1,000 components in `dim` dimensions; centres drawn from N(0, I).
- component sizes: Dirichlet(alpha = 0.5) weights, so sizes vary from a handful to thousands.
- component spread: isotropic sigma, log-uniform in [0.2, 0.8] per component.
- items and queries drawn from the same mixture (queries with their own stream), seed 20261128.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIXTURE_PARAMS", "gaussian_mixture"]

MIXTURE_PARAMS = {
    "n_components": 1000,
    "centre_std": 1.0,
    "dirichlet_alpha": 0.5,
    "sigma_range": [0.2, 0.8],
    "seed": 20261128,
}


def gaussian_mixture(n_items: int, n_queries: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(items float32 [n_items, dim], queries float32 [n_queries, dim]) from the fixed mixture."""
    p = MIXTURE_PARAMS
    rng = np.random.default_rng(p["seed"])
    n_comp = p["n_components"]
    centres = rng.normal(0.0, p["centre_std"], (n_comp, dim)).astype(np.float32)
    weights = rng.dirichlet(np.full(n_comp, p["dirichlet_alpha"]))
    lo, hi = np.log(p["sigma_range"][0]), np.log(p["sigma_range"][1])
    sigmas = np.exp(rng.uniform(lo, hi, n_comp)).astype(np.float32)

    def draw(n: int, stream: np.random.Generator) -> np.ndarray:
        comp = stream.choice(n_comp, n, p=weights)
        out = stream.standard_normal((n, dim), dtype=np.float32)
        out *= sigmas[comp, None]
        out += centres[comp]
        return out

    items = draw(n_items, np.random.default_rng(p["seed"] + 1))
    queries = draw(n_queries, np.random.default_rng(p["seed"] + 2))
    return items, queries
