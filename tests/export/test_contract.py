"""The export side of the contract without training: the demo configs, the model specs, the card
gate, the family folders."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import msgspec
import numpy as np
import pytest

from export import onnx_tools
from export.card import Card, ExportError, Row, Rule, gate_of, served_variant
from export.cli import FAMILIES
from export.demo import build_demo_repository, demo_configs
from export.ranker import RANKER, retrieval_inputs
from export.recommender import QUERY_ENCODER, RANK_CANDIDATES, RANKING, USER_VECTOR, served_spec
from export.risk import RISK
from server.contract.model_config import decode_config, encode_config, load_config


def test_demo_configs_match_their_graphs(tmp_path: Path):
    repo = build_demo_repository(tmp_path / "repo")
    assert sorted(p.name for p in repo.iterdir()) == sorted(demo_configs())
    for name, expected in demo_configs().items():
        config = load_config(repo / name / "config.toml")
        assert config == expected and config.name == name
        sess = onnx_tools.session(repo / name / "1" / "model.onnx")
        assert [i.name for i in sess.get_inputs()] == [t.name for t in config.input]
        assert [o.name for o in sess.get_outputs()] == [t.name for t in config.output]
    assert demo_configs()["mlp_unbatched"].dynamic_batching is None
    bow = demo_configs()["bagofwords"]
    assert bow.input[0].dims == [-1] and bow.model_warmup.dynamic_dim == 32


def test_demo_mlp_runs(tmp_path: Path):
    repo = build_demo_repository(tmp_path / "repo")
    sess = onnx_tools.session(repo / "mlp" / "1" / "model.onnx")
    (score,) = sess.run(None, {"features": np.ones((3, 64), np.float32)})
    assert score.shape == (3, 1)


@pytest.mark.parametrize("spec", [RISK, QUERY_ENCODER, RANKER], ids=lambda s: s.name)
def test_model_specs_write_valid_configs(spec):
    config = decode_config(encode_config(spec.config({"variant": "student"})))
    assert config.name == spec.name
    assert [t.name for t in config.input] == spec.input_names
    assert [t.name for t in config.output] == spec.output_names
    assert config.parameters == {"variant": "student"}
    assert set(spec.dynamic_axes()) == set(spec.input_names) | set(spec.output_names)


def test_query_encoder_is_sized_after_training():
    spec = served_spec(32, 20, 500)
    config = spec.config()
    assert config.output[0].dims == [32] and config.model_warmup.dynamic_dim == 20
    assert config.input[0].pad_value == -1
    # the bounds the server checks before queueing: catalogue indices, at most max_history
    assert (config.input[0].min_value, config.input[0].max_value) == (0, 499)
    assert config.input[0].max_dims == [20]
    assert spec.dynamic_axes()["history"] == {0: "batch", 1: "history_0"}
    with pytest.raises(KeyError):
        QUERY_ENCODER.with_tensor(replace(USER_VECTOR, name="other"))


def test_ranking_stage_is_shared_by_recommender_and_ranker():
    assert RANKER.name == RANKING.model
    assert RANKING.candidates == RANK_CANDIDATES
    assert RANKER.inputs[0].dims == (12,)


def test_ranker_needs_the_recommend_pipeline(tmp_path: Path):
    with pytest.raises(ExportError, match="shopserve export recommender"):
        retrieval_inputs(tmp_path)


def test_family_folders_are_distinct():
    folders = [f for _, _, names in FAMILIES.values() for f in names]
    assert len(folders) == len(set(folders))
    assert FAMILIES["risk"][2] == ["risk", "score"]
    assert FAMILIES["recommender"][2] == ["query_encoder", "recommend"]
    assert FAMILIES["ranker"][2] == ["ranker"]


def _rows(int8: float, int8_ms: float) -> list[Row]:
    return [
        Row("student", 0.9, {}, latency_ms={"batch_1": 1.0}, valid_metric=0.5),
        Row("student-int8", 0.1, {}, latency_ms={"batch_1": int8_ms}, valid_metric=int8),
    ]


def test_served_variant_needs_accuracy_and_speed():
    """On validation (`valid_metric`): the test metrics (0.9 vs 0.1) would say otherwise."""
    assert served_variant(_rows(0.5, 0.5), "batch_1") == "student-int8"
    assert served_variant(_rows(0.4, 0.5), "batch_1") == "student"
    assert served_variant(_rows(0.5, 2.0), "batch_1") == "student"
    assert served_variant(_rows(0.5, 0.5)[:1], "batch_1") == "student"


def test_gate_counts_only_enforced_rules():
    assert gate_of([Rule("a", 1.0, 2.0, False, enforced=False)])["passed"]
    assert not gate_of([Rule("a", 1.0, 2.0, False)])["passed"]


def test_card_refuses_a_gate_the_server_cannot_read(tmp_path: Path):
    rows = [Row("student", 1.0, {})]
    card = Card("m", "t", {"name": "d", "rows": 1, "split": "s"}, "x", rows, {"passed": "yes"})
    with pytest.raises(msgspec.ValidationError):
        card.write(tmp_path)
