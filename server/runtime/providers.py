"""Which ONNX Runtime execution provider a model gets.

onnxruntime-gpu lists CUDAExecutionProvider as available even where there is no GPU, and asking
for it there logs an error before falling back; so we probe the driver library first and decide
the device from the session's own `get_providers()`, never from the available list.
"""

from __future__ import annotations

import ctypes
import functools

__all__ = ["cuda_driver_present", "providers_for"]


@functools.cache
def cuda_driver_present() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def providers_for(kind: str, device_setting: str = "auto", device_id: int = 0) -> list:
    """The provider list to ask for, given the instance kind and the server's device setting."""
    cuda = ("CUDAExecutionProvider", {"device_id": device_id})
    if kind == "KIND_CPU" or device_setting == "cpu":
        if kind == "KIND_GPU":
            return [cuda]  # the caller reports the failure clearly
        return ["CPUExecutionProvider"]
    if kind == "KIND_GPU":
        return [cuda]
    if cuda_driver_present():
        return [cuda, "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]
