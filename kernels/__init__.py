"""Numba kernels over plain numpy arrays: top-k retrieval, IVF, feature assembly.

Imports only numpy and numba (and llvmlite, numba's own code generator, for the float16 widening
intrinsic); used by `server` at request time and by `export` at training time.
Call `warmup()` at start-up so that no request ever waits for a compile.
"""

from .feature_spec import Feature, FeatureSpec
from .features import FeatureTables, assemble_features
from .items import STORAGE_DTYPES, ItemMatrix
from .ivf import IVFIndex, build_ivf, search_ivf
from .topk import topk_inner_product
from .warmup import warmup

__all__ = [
    "STORAGE_DTYPES",
    "Feature",
    "FeatureSpec",
    "FeatureTables",
    "IVFIndex",
    "ItemMatrix",
    "assemble_features",
    "build_ivf",
    "search_ivf",
    "topk_inner_product",
    "warmup",
]
