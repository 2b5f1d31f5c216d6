"""deploy/kserve/: the ClusterServingRuntime and the InferenceService validated against the
OpenAPI v3 schemas of KServe's own CRDs (vendored from a pinned release in tests/deploy/kserve/,
README there), with jsonschema, not the kserve SDK (its models accept unknown fields)."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.pod_rules import serving_container_problems

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Path(__file__).resolve().parent / "kserve"
GROUP = "serving.kserve.io"
RUNTIME = ROOT / "deploy" / "kserve" / "clusterservingruntime.yaml"
ISVC = ROOT / "deploy" / "kserve" / "inferenceservice.yaml"
KINDS = {  # kind: (version, vendored schema)
    "ClusterServingRuntime": ("v1alpha1", "clusterservingruntime.v1alpha1.json"),
    "InferenceService": ("v1beta1", "inferenceservice.v1beta1.json"),
}


def _closed(schema: Any) -> Any:
    """Unknown fields are errors, as the API server's strict field validation (kubectl's default
    `--validate=strict`) makes them: every object schema with `properties` gets
    `additionalProperties: false` unless KServe marks it x-kubernetes-preserve-unknown-fields."""
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            _closed(value)
    elif isinstance(schema, list):
        for value in schema:
            _closed(value)
    return schema


@functools.cache
def validator(kind: str) -> jsonschema.protocols.Validator:
    _, name = KINDS[kind]
    schema = _closed(json.loads((SCHEMAS / name).read_text()))
    # OpenAPI 3.0's schema objects are JSON Schema draft 4 (boolean exclusiveMinimum and all)
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def errors(obj: dict[str, Any]) -> list[str]:
    kind = obj.get("kind")
    if kind not in KINDS:
        return [f"kind {kind!r} is not one of {sorted(KINDS)}"]
    version, _ = KINDS[kind]
    out = []
    if obj.get("apiVersion") != f"{GROUP}/{version}":
        out.append(f"apiVersion {obj.get('apiVersion')!r}, not {GROUP}/{version}")
    if not obj.get("metadata", {}).get("name"):
        out.append("metadata.name is missing")
    for err in validator(kind).iter_errors(obj):
        path = ".".join(str(p) for p in err.absolute_path)
        out.append(f"{path}: {err.message}")
    return out


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", [RUNTIME, ISVC], ids=lambda p: p.name)
def test_manifest_is_valid(path: Path) -> None:
    assert errors(load(path)) == []


def test_runtime_typo_and_wrong_type_fail() -> None:
    runtime = load(RUNTIME)
    runtime["spec"]["protocolVersion"] = runtime["spec"].pop("protocolVersions")
    runtime["spec"]["containers"][0]["ports"][0]["containerPort"] = "8000"
    found = errors(runtime)
    assert any("'protocolVersion' was unexpected" in e for e in found), found
    assert "spec.containers.0.ports.0.containerPort: '8000' is not of type 'integer'" in found


def test_isvc_typo_and_wrong_type_fail() -> None:
    isvc = load(ISVC)
    model = isvc["spec"]["predictor"]["model"]
    model["storageURI"] = model.pop("storageUri")
    isvc["spec"]["predictor"]["minReplicas"] = "2"
    found = errors(isvc)
    assert any("'storageURI' was unexpected" in e for e in found), found
    assert "spec.predictor.minReplicas: '2' is not of type 'integer'" in found


def test_isvc_uses_the_runtime() -> None:
    runtime, isvc = load(RUNTIME), load(ISVC)
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    formats = [f["name"] for f in runtime["spec"]["supportedModelFormats"]]
    assert formats == ["onnx"]
    assert model["modelFormat"]["name"] == "onnx"
    assert {"v2", "grpc-v2"} <= set(runtime["spec"]["protocolVersions"])
    assert model["storageUri"]


def test_runtime_container_serves_and_drains() -> None:
    runtime, isvc = load(RUNTIME), load(ISVC)
    (container,) = runtime["spec"]["containers"]
    assert container["name"] == "kserve-container"  # the name KServe merges the predictor into
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (
        env["SHOPSERVE_MODEL_REPOSITORY"] == "/mnt/models"
    )  # where the storage initializer puts it
    problems = serving_container_problems(
        container,
        grace_s=isvc["spec"]["predictor"]["terminationGracePeriodSeconds"],
        volumes=runtime["spec"]["volumes"],
    )
    assert problems == []


def test_two_ports_need_standard_mode() -> None:
    """Knative allows one container port; the REST + gRPC pair needs KServe's Standard mode."""
    annotations = load(ISVC)["metadata"]["annotations"]
    assert annotations[f"{GROUP}/deploymentMode"] in {"Standard", "RawDeployment"}


def test_keda_scales_on_inflight_requests() -> None:
    """What KServe's webhook checks for KEDA (`validateScalingKedaCompExtension`), and the query
    on the server's gauge in this InferenceService's own pods."""
    isvc = load(ISVC)
    assert isvc["metadata"]["annotations"][f"{GROUP}/autoscalerClass"] == "keda"
    predictor = isvc["spec"]["predictor"]
    assert "scaleMetric" not in predictor
    (metric,) = predictor["autoScaling"]["metrics"]
    assert metric["type"] == "External"
    target, query = metric["external"]["target"], metric["external"]["metric"]["query"]
    assert target["type"] == "Value" and float(target["value"]) > 0
    assert query.startswith("sum(") and "shopserve_inflight_requests{" in query
    assert f'namespace="{isvc["metadata"]["namespace"]}"' in query
    assert f'pod=~"{isvc["metadata"]["name"]}-predictor-.*"' in query


def test_closing_the_schema_keeps_open_maps_open() -> None:
    """`_closed` must not reject what KServe accepts: labels, annotations and resources are maps."""
    runtime = copy.deepcopy(load(RUNTIME))
    runtime["spec"]["annotations"]["anything.example.com/x"] = "y"
    runtime["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = 1
    assert errors(runtime) == []


def doc_manifests() -> list[dict[str, Any]]:
    text = (ROOT / "docs" / "deploy.md").read_text()
    blocks = text.split("```yaml\n")[1:]
    return [yaml.safe_load(block.split("```")[0]) for block in blocks]


def test_docs_per_model_examples_are_valid() -> None:
    """docs/deploy.md's per-model InferenceServices validate, and the explicit-mode one sets
    what the server needs to start on 0.0.0.0 (a token) and to load one model."""
    examples = doc_manifests()
    assert len(examples) == 2
    for isvc in examples:
        assert errors(isvc) == []
        assert isvc["spec"]["predictor"]["model"]["runtime"] == load(RUNTIME)["metadata"]["name"]
    env = {e["name"]: e for e in examples[1]["spec"]["predictor"]["model"]["env"]}
    assert env["SHOPSERVE_MODEL_CONTROL_MODE"]["value"] == "explicit"
    model = env["SHOPSERVE_LOAD_MODELS"]["value"]
    assert model.replace("_", "-") == examples[1]["metadata"]["name"]
    assert "secretKeyRef" in env["SHOPSERVE_ADMIN_TOKEN"]["valueFrom"]
