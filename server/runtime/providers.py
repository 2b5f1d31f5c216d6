"""Which ONNX Runtime execution providers a model is tried on.

onnxruntime-gpu lists CUDAExecutionProvider as available even where there is no GPU, and asking
for it there logs an error before falling back; so we probe the driver library first and decide
the device from the session's own `get_providers()`, never from the available list.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Literal

__all__ = ["CPU", "DevicePlan", "cuda_driver_present", "cuda_provider", "device_plan"]

CPU = "CPUExecutionProvider"

DevicePlan = Literal["cpu", "cuda", "try_cuda", "measure"]
"""cpu: CPU sessions only. cuda: CUDA required (KIND_GPU), a clear load error otherwise.
try_cuda: CUDA when it loads, else CPU. measure: both when CUDA loads, timed, then chosen."""


@functools.cache
def cuda_driver_present() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def cuda_provider(device_id: int) -> tuple[str, dict]:
    return ("CUDAExecutionProvider", {"device_id": device_id})


def device_plan(kind: str, device_setting: str = "auto") -> tuple[DevicePlan, str]:
    """What to try for a model of instance-group `kind` under the server's `device` setting, and
    why (the reason is logged and shown in the model's parameters)."""
    if kind == "KIND_GPU":
        return "cuda", "instance_group kind KIND_GPU"
    if kind == "KIND_CPU":
        return "cpu", "instance_group kind KIND_CPU"
    if device_setting == "cpu":
        return "cpu", "setting device = cpu"
    if not cuda_driver_present():
        return "cpu", "no CUDA driver"
    if device_setting == "cuda":
        return "try_cuda", "setting device = cuda"
    return "measure", "measured"
