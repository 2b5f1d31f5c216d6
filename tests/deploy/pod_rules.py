"""What a shopserve container needs from any pod that runs it (the plain Deployment and the KServe
runtime alike), beyond what a schema can say: the probes on the right endpoints, a termination
grace period that covers preStop and the server's own drain, a writable /tmp on a read-only root,
non-root, and settings the server reads."""

from __future__ import annotations

from typing import Any

from tests.deploy.settings_env import check_settings_env

__all__ = ["serving_container_problems"]

PORTS = {8000: "http", 8001: "grpc"}
# the server binds only after every model is loaded and the kernels compiled (~40 s the first
# time on a small core): the startup probe must allow well beyond that
MIN_STARTUP_S = 120
MARGIN_S = 5  # for the model queues' drain and the kubelet's own latency


def _probe_path(probe: dict | None, container: dict) -> str | None:
    if not probe or "httpGet" not in probe:
        return None
    port = probe["httpGet"]["port"]
    names = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    if names.get(port, port) != 8000:
        return None
    return probe["httpGet"]["path"]


def serving_container_problems(
    container: dict[str, Any],
    *,
    grace_s: int | None,
    volumes: list[dict[str, Any]],
    pod_security: dict[str, Any] | None = None,
) -> list[str]:
    out = []
    env = {e["name"]: e["value"] for e in container.get("env", [])}
    settings = check_settings_env(env)

    ports = {p["containerPort"]: p.get("name") for p in container.get("ports", [])}
    if ports != PORTS:
        out.append(f"ports {ports}, not {PORTS}")

    if _probe_path(container.get("readinessProbe"), container) != "/v2/health/ready":
        out.append("readinessProbe is not GET /v2/health/ready on 8000")
    if _probe_path(container.get("livenessProbe"), container) != "/v2/health/live":
        out.append("livenessProbe is not GET /v2/health/live on 8000")
    startup = container.get("startupProbe") or {}
    budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
    if _probe_path(startup, container) is None or budget < MIN_STARTUP_S:
        out.append(f"startupProbe missing or shorter than {MIN_STARTUP_S} s")

    command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    if not command or command[0] != "sleep" or not command[1].isdigit():
        out.append("preStop is not `sleep N`")
    else:
        # SIGTERM (server/main.py, server/app.py): uvicorn finishes the admitted HTTP requests
        # (up to graceful_timeout_s), then the lifespan stops gRPC with the same grace
        needed = int(command[1]) + 2 * settings.graceful_timeout_s + MARGIN_S
        if grace_s is None or grace_s < needed:
            out.append(
                f"terminationGracePeriodSeconds {grace_s} < preStop {command[1]} s + "
                f"2 x graceful_timeout_s {settings.graceful_timeout_s:g} s + {MARGIN_S} s"
            )

    sec = container.get("securityContext", {})
    non_root = sec.get("runAsNonRoot", (pod_security or {}).get("runAsNonRoot"))
    if non_root is not True:
        out.append("not runAsNonRoot")
    if sec.get("allowPrivilegeEscalation") is not False:
        out.append("allowPrivilegeEscalation is not false")
    if sec.get("readOnlyRootFilesystem") is not True:
        out.append("root filesystem is not read-only")
    if "ALL" not in sec.get("capabilities", {}).get("drop", []):
        out.append("capabilities are not all dropped")

    empty_dirs = {v["name"] for v in volumes if "emptyDir" in v}
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    if "/tmp" not in mounts or mounts["/tmp"]["name"] not in empty_dirs:
        out.append("no emptyDir at /tmp (Numba's cache and HOME on a read-only root)")
    repo = settings.model_repository
    if repo != "/mnt/models" and not mounts.get(repo, {}).get("readOnly"):  # KServe mounts its own
        out.append(f"the model repository {repo} is not a read-only mount")

    resources = container.get("resources", {})
    for kind in ("requests", "limits"):
        if set(resources.get(kind, {})) != {"cpu", "memory"}:
            out.append(f"resources.{kind} does not set cpu and memory")
    return out
