"""Which device runs a model, decided per model by measuring it on both at load time.

Where a GPU and the CUDA provider are present and the model's config does not pin
`instance_group kind`, the model is timed on a CPU session and on a CUDA session at the batch
sizes its batcher forms (`OrtModel.warmup_sizes`: 1, powers of two, the preferred sizes, the
max). A tiny MLP runs a one-row batch in ~13 us on the CPU provider and ~70 us on CUDA (launch
and copies), while from a few thousand rows the GPU is many times faster (../shared/gpu/README.md),
so the answer can be "CPU below N rows, CUDA from N": the model then keeps both sessions and each
batch runs where it was measured to be faster. `choose_device` is the pure decision over the two
measured curves; `measure_curve` takes them.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["DeviceChoice", "choose_device", "measure_curve", "pinned", "shared_choice"]

Device = Literal["cpu", "cuda", "split"]

# CUDA must be this much faster (fraction of the CPU time) to take a batch size: within the noise
# of a start-up measurement the CPU wins, it holds no GPU memory and copies nothing
DEFAULT_MARGIN = 0.10
# the CPU curve stops being measured once CPU is this many times slower than CUDA at two sizes in
# a row: its cost grows about linearly with rows, CUDA's far slower, so larger sizes only confirm
_CPU_GIVE_UP_RATIO = 4.0


@dataclass(frozen=True)
class DeviceChoice:
    """Where a model's batches run. `cuda_from_rows`: batches of at least this many rows run on
    CUDA, smaller ones on the CPU (`split`); 1 for `cuda`, 0 for `cpu` (never)."""

    device: Device
    cuda_from_rows: int
    reason: str
    cpu_ns: dict[int, int] = field(default_factory=dict)
    cuda_ns: dict[int, int] = field(default_factory=dict)

    def device_for(self, rows: int) -> Literal["cpu", "cuda"]:
        if self.device == "cpu":
            return "cpu"
        return "cuda" if rows >= self.cuda_from_rows else "cpu"

    @property
    def kinds(self) -> list[str]:
        """Triton's instance-group kinds that serve the model."""
        return {"cpu": ["KIND_CPU"], "cuda": ["KIND_GPU"], "split": ["KIND_CPU", "KIND_GPU"]}[
            self.device
        ]

    def summary(self) -> str:
        """One line for the log and the model's parameters."""
        where = {
            "cpu": "CPU",
            "cuda": "CUDA",
            "split": f"CPU below {self.cuda_from_rows} rows, CUDA from {self.cuda_from_rows}",
        }[self.device]
        if not self.cuda_ns:
            return f"{where} ({self.reason})"
        sizes = sorted(set(self.cpu_ns) | set(self.cuda_ns))
        curve = ", ".join(
            f"{b}: {_ms(self.cpu_ns.get(b))}/{_ms(self.cuda_ns.get(b))}" for b in sizes
        )
        return f"{where} ({self.reason}; rows: CPU/CUDA ms {curve})"

    def parameters(self) -> dict[str, str]:
        """String parameters for `/config`, metadata and statistics (summed stats keep strings)."""
        out = {"device": self.device, "device_choice": self.summary()}
        if self.device == "split":
            out["cuda_from_rows"] = str(self.cuda_from_rows)
        return out


def _ms(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:.3f}"


def pinned(device: Literal["cpu", "cuda"], reason: str) -> DeviceChoice:
    """A choice made without measuring (one provider only, or the config / setting decides)."""
    return DeviceChoice(device, 1 if device == "cuda" else 0, reason)


def _crossing(lo: int, hi: int, cpu: dict[int, int], cuda: dict[int, int], margin: float) -> int:
    """The row count between `lo` (CPU faster) and `hi` (CUDA faster) where the two measured
    curves, linear in between, cross (CUDA's time scaled by 1 + margin)."""
    d_lo = cuda[lo] * (1 + margin) - cpu[lo]  # > 0: CPU wins at lo
    d_hi = cuda[hi] * (1 + margin) - cpu[hi]  # <= 0: CUDA wins at hi
    if d_lo <= d_hi:
        return hi
    x = lo + (hi - lo) * d_lo / (d_lo - d_hi)
    return max(lo + 1, min(hi, math.ceil(x - 1e-6)))  # 1.1 x 2e5 is 220000.00000000003


def choose_device(
    cpu_ns: dict[int, int], cuda_ns: dict[int, int], margin: float = DEFAULT_MARGIN
) -> DeviceChoice:
    """The device per batch size from run times (ns) per batch size on each.

    CUDA takes a size when it is faster by `margin`; a size CUDA was measured at but the CPU was
    not (its curve was cut short, being far slower) goes to CUDA. The split is one threshold:
    CUDA from the smallest size from which it wins at every larger measured size (a noisy win
    below a CPU win does not count), the threshold placed where the curves cross between the
    last CPU win and that size."""
    sizes = sorted(cuda_ns)
    if not sizes:
        return DeviceChoice("cpu", 0, "no CUDA timings", dict(cpu_ns), dict(cuda_ns))

    def cuda_wins(b: int) -> bool:
        return b not in cpu_ns or cuda_ns[b] * (1 + margin) < cpu_ns[b]

    first = len(sizes)
    for i in range(len(sizes) - 1, -1, -1):
        if not cuda_wins(sizes[i]):
            break
        first = i
    if first == len(sizes):
        return DeviceChoice("cpu", 0, "measured: CPU faster", dict(cpu_ns), dict(cuda_ns))
    if first == 0:
        return DeviceChoice("cuda", 1, "measured: CUDA faster", dict(cpu_ns), dict(cuda_ns))
    lo, hi = sizes[first - 1], sizes[first]
    threshold = _crossing(lo, hi, cpu_ns, cuda_ns, margin) if hi in cpu_ns else hi
    return DeviceChoice("split", threshold, "measured: crossover", dict(cpu_ns), dict(cuda_ns))


def measure_curve(
    run: Callable[[int], object],
    sizes: Iterable[int],
    *,
    repeats: int = 3,
    against: dict[int, int] | None = None,
    budget_s: float = 20.0,
) -> dict[int, int]:
    """Best run time (ns) of `run(rows)` per size, after one untimed run per size (first-run
    allocations, CUDA kernel selection). With `against` (the other device's curve), sizes stop
    once this one is `_CPU_GIVE_UP_RATIO` times slower at two sizes in a row; and at most
    `budget_s` seconds in all, so one slow model cannot hold the start-up for long."""
    out: dict[int, int] = {}
    slower = 0
    t_end = time.perf_counter() + budget_s
    for rows in sizes:
        run(rows)
        best = None
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            run(rows)
            dt = time.perf_counter_ns() - t0
            best = dt if best is None else min(best, dt)
        out[rows] = int(best or 0)
        if against is not None and rows in against:
            slower = slower + 1 if out[rows] > _CPU_GIVE_UP_RATIO * against[rows] else 0
            if slower >= 2:
                break
        if time.perf_counter() > t_end:
            break
    return out


def _to_json(choice: DeviceChoice) -> str:
    return json.dumps(asdict(choice))


def _from_json(text: str) -> DeviceChoice:
    d = json.loads(text)
    for curve in ("cpu_ns", "cuda_ns"):
        d[curve] = {int(k): int(v) for k, v in d[curve].items()}
    return DeviceChoice(**d)


def shared_choice(cache_dir: Path, key: str, measure: Callable[[], DeviceChoice]) -> DeviceChoice:
    """`measure()` once for all the workers of a run: the first to take the lock measures and
    writes the choice under `cache_dir`, the others read it. Eight workers timing one GPU at once
    would each see the others' kernels (and the CPU's cores shared eight ways), and each could
    decide differently."""
    done = cache_dir / f"{key}.device.json"
    with open(cache_dir / f"{key}.device.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _from_json(done.read_text())
        except (OSError, ValueError, TypeError, KeyError):
            pass
        choice = measure()
        tmp = done.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(_to_json(choice))
        tmp.rename(done)
        return choice
