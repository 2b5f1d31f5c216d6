"""One headless Locust run of `locustfile.py` as a subprocess: the command, the environment
that configures the storefront user, and what the run cost the load generator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LocustRun", "Usage", "run_locust"]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
_STOP_TIMEOUT_S = 5  # in-flight requests get this long to finish once the run time is up


@dataclass(frozen=True)
class LocustRun:
    host: str
    users: int
    spawn_rate: float
    duration_s: int  # measured window
    report_dir: Path
    warmup_s: int = 0  # before the measured window; statistics reset at its end
    mix: str | None = None  # SHOPSERVE_MIX; None: the locustfile's default
    env: dict[str, str] = field(default_factory=dict)  # more SHOPSERVE_* settings
    server_pid: int | None = None  # whose CPU to record over the measured window
    log_file: Path | None = None  # Locust's output goes here instead of the terminal
    html: bool = True

    @property
    def prefix(self) -> Path:
        return self.report_dir / "locust"


@dataclass(frozen=True)
class Usage:
    """CPU seconds over the measured window; `*_cores` = seconds of CPU per second of wall."""

    returncode: int
    window_s: float = float("nan")
    locust_cpu_s: float = float("nan")
    server_cpu_s: float = float("nan")

    @property
    def locust_cores(self) -> float:
        return self.locust_cpu_s / self.window_s if self.window_s > 0 else float("nan")

    @property
    def server_cores(self) -> float:
        return self.server_cpu_s / self.window_s if self.window_s > 0 else float("nan")


def _command(run: LocustRun) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "-u",
        str(run.users),
        "-r",
        str(run.spawn_rate),
        "-t",
        f"{run.warmup_s + run.duration_s}s",
        "--host",
        run.host,
        "--csv",
        str(run.prefix),
        "--csv-full-history",
        "--stop-timeout",
        str(_STOP_TIMEOUT_S),
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    if run.html:
        cmd += ["--html", str(run.report_dir / "report.html")]
    return cmd


def _env(run: LocustRun, usage_file: Path) -> dict[str, str]:
    env = {**os.environ, **run.env}
    env["PYTHONPATH"] = (
        str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    )
    env["SHOPSERVE_WARMUP_S"] = str(run.warmup_s)
    env["SHOPSERVE_USAGE_FILE"] = str(usage_file)
    if run.mix:
        env["SHOPSERVE_MIX"] = run.mix
    if run.server_pid is not None:
        env["SHOPSERVE_SERVER_PID"] = str(run.server_pid)
    return env


def run_locust(run: LocustRun) -> Usage:
    """Run Locust to completion (bounded: its run time plus two minutes for start-up and drain)
    and read back what the measured window cost."""
    run.report_dir.mkdir(parents=True, exist_ok=True)
    usage_file = run.report_dir / "usage.json"
    usage_file.unlink(missing_ok=True)
    timeout_s = run.warmup_s + run.duration_s + 120
    if run.log_file is None:
        done = subprocess.run(_command(run), env=_env(run, usage_file), timeout=timeout_s)
    else:
        with open(run.log_file, "w") as log:
            done = subprocess.run(
                _command(run),
                env=_env(run, usage_file),
                timeout=timeout_s,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    if not usage_file.exists():
        return Usage(done.returncode)
    return Usage(done.returncode, **json.loads(usage_file.read_text()))
