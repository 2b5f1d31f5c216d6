"""Offline: data -> teacher -> student (distil) -> ONNX -> quantize -> validate -> model card.

Never imported by `server`; it may import `kernels` and the repository schema
(`server.contract.model_config`).
"""
