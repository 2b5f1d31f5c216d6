"""deploy/kubernetes/: every object validated offline against the Kubernetes OpenAPI schemas of
a pinned release (kubernetes-validate, strict: unknown fields are errors), and checked against
each other, the image, the server's settings and metrics, and the prometheus-adapter rule."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate

from tests.deploy.dockerfile import parse_dockerfile
from tests.deploy.pod_rules import serving_container_problems

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.31.0"  # the oldest Kubernetes the manifests promise to work on
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
ADAPTER = ROOT / "deploy" / "prometheus-adapter" / "values.yaml"


def objects() -> dict[str, dict[str, Any]]:
    out = {}
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            out[doc["kind"]] = doc
    return out


def validate(obj: dict[str, Any]) -> str:
    return kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        assert validate(doc) == "1.31"


def test_every_object_is_there() -> None:
    kinds = set(objects())
    assert kinds == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}


def test_typo_in_a_field_fails() -> None:
    deployment = copy.deepcopy(objects()["Deployment"])
    pod = deployment["spec"]["template"]["spec"]
    pod["terminationGracePeriodSecond"] = pod.pop("terminationGracePeriodSeconds")
    with pytest.raises(kubernetes_validate.ValidationError, match="terminationGracePeriodSecond"):
        validate(deployment)


def test_wrong_type_fails() -> None:
    hpa = copy.deepcopy(objects()["HorizontalPodAutoscaler"])
    hpa["spec"]["minReplicas"] = "2"
    with pytest.raises(kubernetes_validate.ValidationError, match="'2' is not of type 'integer'"):
        validate(hpa)


def test_container_serves_and_drains() -> None:
    pod = objects()["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    problems = serving_container_problems(
        container,
        grace_s=pod["terminationGracePeriodSeconds"],
        volumes=pod["volumes"],
        pod_security=pod["securityContext"],
    )
    assert problems == []


def test_container_check_can_fail() -> None:
    pod = copy.deepcopy(objects()["Deployment"]["spec"]["template"]["spec"])
    (container,) = pod["containers"]
    container["readinessProbe"]["httpGet"]["path"] = "/v2/health/live"
    container["securityContext"]["readOnlyRootFilesystem"] = False
    problems = serving_container_problems(container, grace_s=20, volumes=pod["volumes"])
    assert "readinessProbe is not GET /v2/health/ready on 8000" in problems
    assert "root filesystem is not read-only" in problems
    assert any(p.startswith("terminationGracePeriodSeconds 20 < preStop") for p in problems)


def test_pod_runs_as_the_image_user() -> None:
    runtime = parse_dockerfile(ROOT / "deploy" / "Dockerfile")[-1]
    user = runtime.last("USER").args  # type: ignore[union-attr]
    uid, gid = (int(x) for x in user.split(":"))
    pod = objects()["Deployment"]["spec"]["template"]["spec"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
    assert runtime.exposed == {p["containerPort"] for p in pod["containers"][0]["ports"]}


def test_service_and_budget_select_the_pods() -> None:
    objs = objects()
    labels = objs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    port_names = {
        p["name"] for p in objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    service = objs["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["ports"]} == port_names
    for kind in ("Deployment", "PodDisruptionBudget"):
        assert objs[kind]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert "replicas" not in objs["Deployment"]["spec"]  # the HPA owns it


def test_hpa_scales_on_the_servers_inflight_gauge() -> None:
    from prometheus_client import generate_latest

    from server.metrics import Metrics

    objs = objects()
    hpa = objs["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": objs["Deployment"]["metadata"]["name"],
    }
    (metric,) = hpa["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["target"]["type"] == "AverageValue"
    name = metric["pods"]["metric"]["name"]
    # the server exports it ...
    assert f"# TYPE {name} gauge" in generate_latest(Metrics().registry).decode()
    # ... and the adapter exposes it per pod under the same name
    (rule,) = yaml.safe_load(ADAPTER.read_text())["rules"]["custom"]
    assert rule["seriesQuery"].startswith(name + "{")
    assert rule["name"]["as"] == name
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
    assert rule["resources"]["overrides"]["namespace"] == {"resource": "namespace"}
    assert "<<.Series>>{<<.LabelMatchers>>}" in rule["metricsQuery"]
    assert "by (<<.GroupBy>>)" in rule["metricsQuery"]


def test_pods_are_scraped_where_the_metrics_are() -> None:
    annotations = objects()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8000"
    assert annotations["prometheus.io/path"] == "/metrics"
