"""The gRPC codec alone (no server): raw and typed tensors to numpy and back, with the REST
codec's limits, every refusal naming the input."""

from __future__ import annotations

import numpy as np
import pytest

from server.errors import BadRequest
from server.grpc import shopserve_inference_pb2 as pb
from server.grpc.codec import decode_inputs, encode_response, parameters_of, wants_raw_outputs
from server.http.v2_codec import encode_bytes_tensor
from server.settings import Limits

LIMITS = Limits(max_elements=1024, max_bytes_elements=4, max_bytes_length=8)


def _request(*tensors: tuple[str, str, list[int]], raw: list[bytes] | None = None):
    req = pb.ModelInferRequest(model_name="m")
    for name, datatype, shape in tensors:
        req.inputs.add(name=name, datatype=datatype, shape=shape)
    req.raw_input_contents.extend(raw or [])
    return req


def test_raw_tensors_are_read_without_a_copy():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    words = [b"ab", b"", b"xyz"]
    req = _request(("x", "FP32", [2, 3]), ("w", "BYTES", [3]),
                   raw=[x.tobytes(), encode_bytes_tensor(words)])  # fmt: skip
    out = decode_inputs(req, LIMITS)
    np.testing.assert_array_equal(out["x"], x)
    assert not out["x"].flags.owndata  # a view of the message's bytes
    assert out["w"].tolist() == words


def test_typed_contents_of_every_kind():
    req = _request(("b", "BOOL", [2]), ("i8", "INT8", [2]), ("u16", "UINT16", [1]),
                   ("f64", "FP64", [1]), ("s", "BYTES", [1]))  # fmt: skip
    req.inputs[0].contents.bool_contents.extend([True, False])
    req.inputs[1].contents.int_contents.extend([-128, 127])
    req.inputs[2].contents.uint_contents.append(65535)
    req.inputs[3].contents.fp64_contents.append(0.25)
    req.inputs[4].contents.bytes_contents.append(b"hi")
    out = decode_inputs(req, LIMITS)
    assert out["b"].dtype == np.bool_ and out["i8"].dtype == np.int8
    assert out["i8"].tolist() == [-128, 127] and out["u16"].dtype == np.uint16
    assert out["f64"].tolist() == [0.25] and out["s"].tolist() == [b"hi"]


def _refused(req, *needles: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_inputs(req, LIMITS)
    for n in needles:
        assert n in info.value.message, info.value.message


def test_refusals_name_the_input():
    _refused(_request(), "inputs: 0 inputs")
    _refused(_request(("x", "FP32", [2, -1])), "inputs[0] (x).shape", "negative")
    _refused(_request(("x", "FP32", [64, 64])), "inputs[0] (x).shape", "limit of 1024")
    _refused(_request(("x", "FP99", [1])), "inputs[0] (x).datatype", "FP99")
    _refused(_request(("x", "FP32", [1]), ("x", "FP32", [1]), raw=[b"\0" * 4] * 2),
             "inputs[1] (x)", "twice")  # fmt: skip
    _refused(_request(("x", "FP32", [2]), raw=[b"\0" * 4]), "inputs[0] (x)", "8")
    _refused(_request(("x", "FP32", [1]), ("y", "FP32", [1]), raw=[b"\0" * 4]),
             "raw_input_contents: 1 entries for 2 inputs")  # fmt: skip
    _refused(_request(("x", "FP32", [3])), "inputs[0] (x).contents.fp32_contents", "0 elements")
    _refused(_request(("h", "FP16", [1])), "inputs[0] (h)", "raw_input_contents")
    big = _request(("s", "BYTES", [5]))
    big.inputs[0].contents.bytes_contents.extend([b"a"] * 5)
    _refused(big, "inputs[0] (s)", "5 BYTES elements")
    long = _request(("s", "BYTES", [1]))
    long.inputs[0].contents.bytes_contents.append(b"a" * 9)
    _refused(long, "inputs[0] (s)", "9 bytes")
    narrow = _request(("i", "INT8", [1]))
    narrow.inputs[0].contents.int_contents.append(300)
    _refused(narrow, "inputs[0] (i).contents.int_contents", "out of range for INT8")
    both = _request(("x", "FP32", [1]), raw=[b"\0" * 4])
    both.inputs[0].contents.fp32_contents.append(1.0)
    _refused(both, "inputs[0] (x)", "both")


def test_parameters_and_raw_output_choice():
    req = _request(("x", "FP32", [1]))
    req.parameters["timeout"].int64_param = 5
    req.parameters["binary_data_output"].bool_param = False
    assert parameters_of(req.parameters) == {"timeout": 5, "binary_data_output": False}
    assert not wants_raw_outputs(req)
    req.outputs.add(name="y").parameters["binary_data"].bool_param = True
    assert wants_raw_outputs(req)
    assert wants_raw_outputs(_request(("x", "FP32", [1]), raw=[b"\0" * 4]))


def test_encode_raw_and_typed():
    outs = {"y": np.array([[1.5], [2.0]], np.float32), "s": np.array([b"a", b"bc"], object)}
    raw = encode_response("m", "1", "id", outs, raw=True)
    assert [list(o.shape) for o in raw.outputs] == [[2, 1], [2]] and raw.id == "id"
    assert np.frombuffer(raw.raw_output_contents[0], "<f4").tolist() == [1.5, 2.0]
    assert raw.raw_output_contents[1] == encode_bytes_tensor([b"a", b"bc"])
    typed = encode_response("m", "1", "", outs, raw=False)
    assert not typed.raw_output_contents and list(typed.outputs[0].contents.fp32_contents) == [
        1.5,
        2.0,
    ]
    assert list(typed.outputs[1].contents.bytes_contents) == [b"a", b"bc"]
    half = encode_response("m", "1", "", {"h": np.ones(2, np.float16)}, raw=False)
    assert len(half.raw_output_contents) == 1  # FP16 has no typed field: raw
