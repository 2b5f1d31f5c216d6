"""shopserve's serving side: HTTP (Litestar), repository, batching, ONNX Runtime sessions."""

__version__ = "0.1.0"
__all__ = ["__version__"]
