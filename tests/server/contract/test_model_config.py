import msgspec
import pytest

from server.contract.model_config import decode_config, triton_config

GOOD = """
name = "ranker"
max_batch_size = 1024
[[input]]
name = "features"
data_type = "TYPE_FP32"
dims = [64]
[[output]]
name = "score"
data_type = "TYPE_FP32"
dims = [1]
[dynamic_batching]
max_queue_delay_microseconds = 500
preferred_batch_size = [64, 256]
[dynamic_batching.default_queue_policy]
max_queue_size = 4096
default_timeout_microseconds = 50000
[[instance_group]]
count = 2
kind = "KIND_CPU"
[version_policy]
specific = { versions = [1, 3] }
"""


def test_design_example_decodes_and_maps_to_triton_json():
    cfg = decode_config(GOOD)
    assert cfg.instances.count == 2
    assert cfg.version_policy.select([1, 2, 3, 4]) == [1, 3]
    tj = triton_config(cfg)
    assert tj["max_batch_size"] == 1024
    assert tj["input"][0] == {"name": "features", "data_type": "TYPE_FP32", "dims": [64]}
    assert tj["dynamic_batching"]["preferred_batch_size"] == [64, 256]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (("max_batch_size = 1024", "max_batch_size = -1"), "$.max_batch_size"),
        (('data_type = "TYPE_FP32"', 'data_type = "FLOAT"'), "$.input[0].data_type"),
        (("max_queue_delay_microseconds = 500", "max_queue_delay_us = 500"), "max_queue_delay_us"),
        (('kind = "KIND_CPU"', 'kind = "KIND_TPU"'), "$.instance_group[0].kind"),
        (
            ("preferred_batch_size = [64, 256]", "preferred_batch_size = [2048]"),
            "preferred_batch_size",
        ),
        (("dims = [64]", "dims = [0]"), "dims"),
    ],
)
def test_bad_fields_are_named(edit, field):
    with pytest.raises(msgspec.ValidationError) as info:
        decode_config(GOOD.replace(*edit))
    assert field in str(info.value)


def test_version_policies():
    cfg = decode_config(
        GOOD.replace("specific = { versions = [1, 3] }", "latest = { num_versions = 2 }")
    )
    assert cfg.version_policy.select([1, 5, 3]) == [3, 5]
    cfg = decode_config(GOOD.replace("specific = { versions = [1, 3] }", "all = {}"))
    assert cfg.version_policy.select([2, 1]) == [1, 2]
