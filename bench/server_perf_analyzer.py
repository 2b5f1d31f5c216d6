"""Triton's `perf_analyzer` against shopserve (issue 2, section 5).

The binary bundled in the `tritonclient` 2.40 wheel runs on this machine's glibc (newer wheels
need glibc 2.38). It needs `libb64-0d` (Debian) and `libcudart.so.12` (from the
`nvidia-cuda-runtime-cu12` wheel) even for HTTP on a CPU-only host. tritonclient 2.40 must not go
into the project venv (it conflicts with the latest `tritonclient[http]` and Locust), so the
wheels are downloaded with `pip download --no-deps` and only the files needed are unpacked into a
cache folder that ignores itself (`.cache/perf_analyzer/`).

    python -m bench.server_perf_analyzer [--protocol grpc] [--concurrency-range 1:4]
        [--measurement-interval 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

__all__ = ["CACHE", "PerfAnalyzer", "ensure_perf_analyzer", "parse_throughputs", "main"]

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "perf_analyzer"
_TC_VERSION = "2.40.0"
_BIN_IN_WHEEL = f"tritonclient-{_TC_VERSION}.data/data/bin/perf_analyzer"
_CUDART = "nvidia/cuda_runtime/lib/libcudart.so.12"


class PerfAnalyzer:
    def __init__(self, binary: Path, lib_dir: Path) -> None:
        self.binary = binary
        self.lib_dir = lib_dir

    def env(self) -> dict[str, str]:
        old = os.environ.get("LD_LIBRARY_PATH", "")
        return {**os.environ, "LD_LIBRARY_PATH": f"{self.lib_dir}:{old}".rstrip(":")}

    def run(
        self, args: list[str], timeout_s: float = 120, cpu: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        pin = ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []
        return subprocess.run(
            [*pin, str(self.binary), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )


def _has_libb64() -> bool:
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
    return "libb64.so.0d" in out


def _pip_download(spec: str, dest: Path, extra: list[str]) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), *extra, spec],
        check=True,
        capture_output=True,
        timeout=600,
    )
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download {spec}: no wheel in {dest}")
    return wheels[0]


def ensure_perf_analyzer(cache: Path = CACHE) -> PerfAnalyzer | str:
    """The cached binary (fetched on first use), or the reason it cannot be had here."""
    binary, lib_dir = cache / "perf_analyzer", cache / "lib"
    if not _has_libb64():
        if shutil.which("apt-get") is None:
            return "perf_analyzer needs libb64-0d and there is no apt-get"
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        subprocess.run(
            [*sudo, "apt-get", "install", "-y", "-q", "libb64-0d"],
            capture_output=True,
            check=False,
            timeout=300,
        )
        if not _has_libb64():
            return "perf_analyzer needs libb64-0d: apt-get install libb64-0d failed (no network?)"
    if not (binary.exists() and (lib_dir / "libcudart.so.12").exists()):
        cache.mkdir(parents=True, exist_ok=True)
        (cache.parent / ".gitignore").write_text("*\n")  # the cache ignores itself
        try:
            with tempfile.TemporaryDirectory() as tmp:
                tc = _pip_download(
                    f"tritonclient=={_TC_VERSION}",
                    Path(tmp) / "tc",
                    ["--only-binary=:all:", "--platform", "manylinux1_x86_64"],
                )
                rt = _pip_download("nvidia-cuda-runtime-cu12", Path(tmp) / "rt", [])
                with zipfile.ZipFile(tc) as z:
                    binary.write_bytes(z.read(_BIN_IN_WHEEL))
                binary.chmod(0o755)
                lib_dir.mkdir(exist_ok=True)
                with zipfile.ZipFile(rt) as z:
                    (lib_dir / "libcudart.so.12").write_bytes(z.read(_CUDART))
        except (subprocess.SubprocessError, OSError, KeyError) as exc:
            binary.unlink(missing_ok=True)
            return f"could not fetch perf_analyzer (pip download, no network?): {exc}"
    pa = PerfAnalyzer(binary, lib_dir)
    probe = pa.run(["--version"], timeout_s=30)
    if probe.returncode != 0:
        return f"perf_analyzer does not run here: {(probe.stdout + probe.stderr)[-300:]}"
    return pa


def parse_throughputs(text: str) -> dict[int, float]:
    """`Concurrency: N, throughput: X infer/sec, ...` lines -> {N: X}."""
    out: dict[int, float] = {}
    for line in text.splitlines():
        if line.startswith("Concurrency:") and "throughput:" in line:
            c = int(line.split(",")[0].split(":")[1])
            out[c] = float(line.split("throughput:")[1].split()[0])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.server_perf_analyzer")
    p.add_argument("--model", default="mlp")
    p.add_argument("--protocol", choices=("http", "grpc"), default="http")
    p.add_argument("--concurrency-range", default="1:2")
    p.add_argument("--measurement-interval", default="1000")
    p.add_argument("--server-cpu", type=int, default=None)
    p.add_argument("--client-cpu", type=int, default=None)
    args = p.parse_args(argv)
    pa = ensure_perf_analyzer()
    if isinstance(pa, str):
        print(pa, file=sys.stderr)
        return 2
    from bench.server_procs import ServerProcess, free_port
    from export.demo import build_demo_repository

    with tempfile.TemporaryDirectory(prefix="shopserve-pa-") as tmp:
        repo = build_demo_repository(Path(tmp) / "repo")
        port, grpc_port = free_port(), free_port()
        cmd = [sys.executable, "-m", "server", "serve", "--model-repository", str(repo),
               "--host", "127.0.0.1", "--port", str(port), "--grpc-port", str(grpc_port)]  # fmt: skip
        env = {"SHOPSERVE_DEVICE": "cpu", "SHOPSERVE_LOG_LEVEL": "warning"}
        with ServerProcess(cmd, cpu=args.server_cpu, env=env, log_path=Path(tmp) / "s.log") as s:
            s.wait_ready(f"http://127.0.0.1:{port}/v2/health/ready")
            url = f"127.0.0.1:{grpc_port if args.protocol == 'grpc' else port}"
            pa_args = ["-m", args.model, "-u", url, "-i", args.protocol,
                       "--concurrency-range", args.concurrency_range,
                       "--measurement-interval", args.measurement_interval]  # fmt: skip
            res = pa.run(pa_args, timeout_s=300, cpu=args.client_cpu)
    print(res.stdout + res.stderr)
    return res.returncode


if __name__ == "__main__":
    raise SystemExit(main())
