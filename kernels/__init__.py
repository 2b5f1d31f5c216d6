"""Numba kernels over plain numpy arrays: top-k retrieval, IVF, feature assembly.

Imports only numpy and numba; used by `server` at request time and by `export` at training time.
"""
