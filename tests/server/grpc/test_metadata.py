"""Health, metadata, model config, statistics and the metrics through Triton's gRPC client: the
same answers as the REST routes."""

from __future__ import annotations

import numpy as np
from prometheus_client import generate_latest

from tests.server.grpc.conftest import tritonclient_grpc as grpcclient


def test_health_and_server_metadata(client, server):
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata(as_json=True)
    assert meta["name"] == "shopserve"
    rest = server.http.get("/v2").json()
    assert meta["version"] == rest["version"] and meta["extensions"] == rest["extensions"]


def test_model_readiness(client):
    assert client.is_model_ready("mlp") and client.is_model_ready("mlp", "1")
    # as Triton: unknown models and versions are "not ready", not errors
    assert not client.is_model_ready("nope")
    assert not client.is_model_ready("mlp", "7")


def test_model_metadata_matches_rest(client, server):
    for name in ("mlp", "simple", "identity_bytes", "bagofwords"):
        meta = client.get_model_metadata(name, as_json=True)
        rest = server.http.get(f"/v2/models/{name}").json()
        # protobuf's JSON writes int64 as strings
        for side in ("inputs", "outputs"):
            for t in meta[side]:
                t["shape"] = [int(d) for d in t["shape"]]
        assert meta == rest
    assert client.get_model_metadata("mlp", "1").versions == ["1"]


def test_model_config_is_what_perf_analyzer_reads(client, server):
    cfg = client.get_model_config("mlp").config
    rest = server.http.get("/v2/models/mlp/config").json()
    assert cfg.name == "mlp" and cfg.max_batch_size == rest["max_batch_size"] == 1024
    assert cfg.platform == "onnxruntime_onnx" and cfg.backend == "onnxruntime"
    assert [(i.name, list(i.dims)) for i in cfg.input] == [("features", [64])]
    assert cfg.input[0].data_type == 11  # TYPE_FP32 in model_config.proto
    assert cfg.output[0].name == "score"
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 500
    assert list(cfg.dynamic_batching.preferred_batch_size) == [64, 256]
    assert cfg.version_policy.WhichOneof("policy_choice") == "latest"
    assert cfg.instance_group[0].count == 1
    assert client.get_model_config("identity_bytes").config.input[0].data_type == 13  # STRING
    assert client.get_model_config("mlp", "1").config.name == "mlp"


def test_statistics_count_grpc_requests(client):
    x = np.ones((2, 64), np.float32)
    inp = grpcclient.InferInput("features", [2, 64], "FP32")
    inp.set_data_from_numpy(x)
    before = client.get_inference_statistics("mlp").model_stats[0]
    client.infer("mlp", [inp])
    stats = client.get_inference_statistics("mlp", "1").model_stats
    assert [(s.name, s.version) for s in stats] == [("mlp", "1")]
    s = stats[0]
    assert s.inference_count == before.inference_count + 2
    assert s.inference_stats.success.count == before.inference_stats.success.count + 1
    assert s.inference_stats.queue.ns > 0 and s.last_inference > 0
    assert any(b.batch_size >= 1 and b.compute_infer.count > 0 for b in s.batch_stats)
    every = client.get_inference_statistics().model_stats
    assert {"mlp", "simple"} <= {m.name for m in every}


def test_answers_are_counted_in_metrics(client, server):
    client.is_server_live()
    client.is_model_ready("mlp")
    text = generate_latest(server.app.state.metrics.registry).decode()
    assert 'shopserve_grpc_requests_total{code="ok",method="ServerLive",status="OK"}' in text
    assert 'shopserve_inference_request_success_total{model="mlp",version="1"}' in text


def test_a_model_with_a_card_carries_its_verdict_in_the_grpc_config(repo_copy):
    """REST metadata adds the card's verdict as `parameters`, which gRPC's metadata message
    lacks: gRPC answers the metadata without it and carries it in ModelConfig.parameters."""
    import json

    from tests.server.grpc.conftest import serve

    gate = {"passed": False, "rules": [], "served": "student", "tier": "preview"}
    (repo_copy / "mlp" / "card.json").write_text(json.dumps({"gate": gate}))
    for app in serve(repo_copy, load_models=["mlp"], model_control_mode="explicit"):
        c = grpcclient.InferenceServerClient(app.url)
        try:
            assert c.get_model_metadata("mlp").name == "mlp"
            params = c.get_model_config("mlp").config.parameters
            assert params["gate"].string_value == "failed"
            assert params["tier"].string_value == "preview"
        finally:
            c.close()
