"""Strategies and the checked sender of the hostile-input battery (test_hostile_codec.py):
Hypothesis builds V2 JSON and binary requests, deep bodies, /v1 and admin bodies; `send` asserts
every answer is < 500, within a client timeout, with the one error body."""

from __future__ import annotations

import json
import os
import struct
from collections import Counter
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import quote

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from server.contract.dtypes import V2_TO_NUMPY
from tests.server.http.hostile import CLIENT_TIMEOUT_S, VOCAB

COMMON = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
SENT: Counter[str] = Counter()  # requests sent, by test (the count test reads it)
STATUSES: Counter[int] = Counter()  # answers by status (printed by the count test, see -s)

V2_TYPES = list(V2_TO_NUMPY)  # every datatype the server knows; unknown ones are drawn too
ITEMSIZE = {"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2}
ITEMSIZE |= {"UINT32": 4, "INT32": 4, "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8}
# the demo models' inputs: model -> [(input, datatype, dims without the batch dim)]
MODELS: dict[str, list[tuple[str, str, list[int]]]] = {
    "mlp": [("features", "FP32", [64])],
    "mlp_unbatched": [("features", "FP32", [64])],
    "simple": [("INPUT0", "INT64", [16]), ("INPUT1", "INT64", [16])],
    "bagofwords": [("input_ids", "INT64", [-1])],
    "identity_bytes": [("text", "BYTES", [1])],
}
OUTPUTS = {
    "mlp": ["score"],
    "mlp_unbatched": ["score"],
    "simple": ["OUTPUT0", "OUTPUT1"],
    "bagofwords": ["logits"],
    "identity_bytes": ["echo"],
}


# -- the app ---------------------------------------------------------------------------------------


def send(hostile, method: str, path: str, *, short_deadline: bool = False, **kw):
    """One request with a client timeout; asserts the answer is not a 5xx and that an error has
    the one body. A 504 is allowed only when the request asked for a short deadline."""
    client, pool = hostile
    fut = pool.submit(client.request, method, path, **kw)
    try:
        r = fut.result(timeout=CLIENT_TIMEOUT_S)
    except FutureTimeout:
        pytest.fail(f"{method} {path}: no answer within {CLIENT_TIMEOUT_S} s (a hang)")
    SENT[os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]] += 1
    STATUSES[r.status_code] += 1
    ok_5xx = {504} if short_deadline else set()
    assert r.status_code < 500 or r.status_code in ok_5xx, (r.status_code, r.text[:500])
    if r.status_code >= 400:
        body = r.json()
        assert set(body) == {"error", "code", "request_id"}, body
        assert isinstance(body["error"], str) and body["error"], body
        assert isinstance(body["code"], str) and body["code"], body
        if r.status_code == 504:
            assert body["code"] == "deadline_exceeded", body
        if r.status_code == 429:
            assert "retry-after" in r.headers
    return r


# -- strategies ------------------------------------------------------------------------------------

names = st.text(min_size=0, max_size=40)  # unicode, empty, control characters
model_names = st.one_of(st.sampled_from(sorted(MODELS)), names)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=24)
huge_ints = st.sampled_from([2**31, 2**32 + 1, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30])
dims = st.one_of(
    st.integers(0, 4),
    st.integers(-(2**63), -1),
    huge_ints,
    st.integers(5, 100_000),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=24,
)
param_values = st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(names, scalars))


def good(datatype: str) -> st.SearchStrategy:
    """A value of `datatype` (integers mostly inside bagofwords' vocabulary)."""
    if datatype == "BOOL":
        return st.booleans()
    if datatype == "BYTES":
        return st.text(max_size=12)
    if datatype.startswith("FP"):
        return st.one_of(st.floats(-1e6, 1e6), st.integers(-9, 9))
    return st.integers(0, VOCAB - 1)


def element(datatype: str) -> st.SearchStrategy:
    """A value that fits `datatype`, or is out of its range, or is not one at all."""
    wrong = st.one_of(st.none(), st.text(max_size=4), st.lists(st.integers(), max_size=2))
    odd = st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-(2**65), 2**65),
        st.sampled_from([-1, VOCAB, VOCAB + 1, 2**31]),
        huge_ints,
    )
    return st.one_of(good(datatype), good(datatype), odd, wrong)


@st.composite
def tensors(draw, model: str, clean: bool = False):
    """A list of input tensors for `model`: plausible, each with a mutation unless `clean`."""
    out = []
    rows = draw(st.integers(1, 3))
    for name, datatype, tdims in MODELS.get(model, MODELS["mlp"]):
        # every demo model batches (mlp_unbatched only has no dynamic batcher): [rows, *dims]
        shape = [rows, *(draw(st.integers(1, 40)) if d == -1 else d for d in tdims)]
        mutation = draw(
            st.sampled_from(
                ["none", "nest"]
                if clean
                else [
                    "none",
                    "shape",
                    "rank",
                    "datatype",
                    "name",
                    "count",
                    "values",
                    "nest",
                    "wild",
                ]
            )
        )
        if mutation == "shape":
            shape[draw(st.integers(0, len(shape) - 1))] = draw(dims)
        elif mutation == "rank":
            shape = draw(st.lists(dims, min_size=0, max_size=70))
        elif mutation == "datatype":
            datatype = draw(st.one_of(st.sampled_from(V2_TYPES), st.text(max_size=20)))
        elif mutation == "name":
            name = draw(names)
        count = 1
        for d in shape:
            count *= d
        count = max(0, min(count, 256)) if all(0 <= d <= 100_000 for d in shape) else 3
        if mutation == "count":
            count = max(0, count + draw(st.sampled_from([-1, 1, 7])))
        values = (
            good(datatype) if clean else draw(st.sampled_from([good(datatype), element(datatype)]))
        )
        data: object = draw(st.lists(values, min_size=count, max_size=count))
        if mutation == "values" and count:
            data = draw(st.lists(st.one_of(json_values, huge_ints), min_size=1, max_size=count))
        if mutation == "nest" and isinstance(data, list) and shape:
            # nested row-major, as Triton accepts, sometimes one level too deep
            for d in reversed(shape[1:]):
                if d <= 0 or len(data) % d:
                    break
                data = [data[i : i + d] for i in range(0, len(data), d)]
            if not clean and draw(st.booleans()):
                data = [data]
        tensor: dict = {"name": name, "shape": shape, "datatype": datatype, "data": data}
        if mutation == "wild":
            tensor = draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "name": st.one_of(names, json_values),
                        "shape": st.one_of(st.lists(dims, max_size=70), json_values),
                        "datatype": st.one_of(st.sampled_from(V2_TYPES), json_values),
                        "data": json_values,
                        "parameters": st.dictionaries(names, param_values, max_size=3),
                        "extra": json_values,
                    },
                )
            )
        elif not clean and draw(st.integers(0, 5)) == 0:
            tensor["parameters"] = draw(st.dictionaries(names, param_values, max_size=3))
        out.append(tensor)
    if not clean and draw(st.integers(0, 6)) == 0:
        out.append(out[0])  # an input given twice
    if not clean and draw(st.integers(0, 6)) == 0:
        out = out[:-1]  # one missing (or an empty list)
    return out


timeouts_us = st.one_of(
    st.integers(0, 3_600_000_000 + 1),
    st.integers(-5, -1),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
timeout_headers = st.one_of(
    st.sampled_from(["0", "0.5", "1", "30", "1e3", "inf", "nan", "-1", "3600001", "", " 5 "]),
    st.integers(-10, 10**7).map(str),
    header_text,
)


def short(params: dict, headers: dict) -> bool:
    """Whether the request asked for a deadline short enough that a 504 is a fair answer."""
    t = params.get("timeout")
    if isinstance(t, int) and not isinstance(t, bool) and 0 < t < 2_000_000:
        return True
    h = headers.get("X-Request-Timeout-Ms")
    try:
        return h is not None and float(h) < 2000
    except ValueError:
        return False


@st.composite
def v2_json_requests(draw):
    """A third are well-formed requests (that reach the model); the rest have faults anywhere."""
    clean = draw(st.integers(0, 2)) == 0
    model = draw(st.sampled_from(sorted(MODELS)) if clean else model_names)
    body: dict = {"inputs": draw(tensors(model if model in MODELS else "mlp", clean))}
    if draw(st.booleans()):
        body["id"] = draw(names if clean else st.one_of(names, json_values))
    params: dict = {}
    if draw(st.booleans()):
        optional = {
            "timeout": st.integers(2_000_000, 3_600_000_000) | st.just(0),
            "binary_data_output": st.booleans(),
        }
        if not clean:
            optional |= {"timeout": timeouts_us, "priority": scalars, "nested": json_values}
        params = draw(st.fixed_dictionaries({}, optional=optional))
        body["parameters"] = params
    if draw(st.booleans()):
        known = st.sampled_from(OUTPUTS.get(model, ["score"]))
        param = st.fixed_dictionaries({}, optional={"binary_data": st.booleans()})
        if not clean:
            known = st.one_of(known, names)
            param = st.dictionaries(names, param_values, max_size=2)
        body["outputs"] = draw(
            st.lists(
                st.fixed_dictionaries({"name": known}, optional={"parameters": param}),
                max_size=3,
                unique_by=lambda o: o["name"],
            )
        )
    headers: dict = {"Content-Type": "application/json"}
    if draw(st.integers(0, 3)) == 0:
        headers["X-Request-Timeout-Ms"] = draw(
            st.integers(2000, 3_600_000).map(str) if clean else timeout_headers
        )
    if not clean and draw(st.integers(0, 5)) == 0:
        headers["Inference-Header-Content-Length"] = draw(
            st.one_of(st.integers(-5, 10**6).map(str), header_text)
        )
    version = draw(
        st.sampled_from(
            [None, "1"] if clean else [None, None, "1", "2", "0", "-1", "x", "99999999999999"]
        )
    )
    return model, version, body, headers, short(params, headers), clean


def infer_path(model: str, version: str | None) -> str:
    base = f"/v2/models/{quote(model, safe='')}"
    return base + ("" if version is None else f"/versions/{quote(version, safe='')}") + "/infer"


def _blob(datatype: str, shape: list[int], draw, clean: bool) -> bytes:
    """Bytes for a tensor of `shape`: the right size and valid values when `clean`, or not."""
    count = 1
    for d in shape:
        count *= d
    count = count if 0 <= count <= 4096 else 4
    if datatype == "BYTES":
        parts = []
        for _ in range(count):
            data = draw(st.binary(max_size=16))
            wrong = st.sampled_from([0, 2**32 - 1, len(data) + 3])
            n = len(data) if clean else draw(st.one_of(st.just(len(data)), wrong))
            parts.append(struct.pack("<I", n) + data)
        blob = b"".join(parts)
    elif clean:
        values = draw(st.lists(good(datatype), min_size=count, max_size=count))
        blob = np.asarray(values, dtype=V2_TO_NUMPY[datatype].newbyteorder("<")).tobytes()
    else:
        blob = bytes(count * ITEMSIZE.get(datatype, 4))
    how = "exact" if clean else draw(st.sampled_from(["exact", "exact", "short", "long", "random"]))
    if how == "short":
        blob = blob[: max(0, len(blob) - draw(st.integers(1, 8)))]
    elif how == "long":
        blob += draw(st.binary(min_size=1, max_size=8))
    elif how == "random":
        blob = draw(st.binary(max_size=2048))
    return blob


@st.composite
def v2_binary_requests(draw):
    """A third are well-formed (answered 200); the rest have faults in sizes, lengths, header."""
    clean = draw(st.integers(0, 2)) == 0
    model = draw(st.sampled_from(sorted(MODELS)))
    inputs, blobs = [], []
    for tensor in draw(tensors(model, clean)):
        if not isinstance(tensor, dict):
            continue
        shape = tensor.get("shape") if isinstance(tensor.get("shape"), list) else [1]
        datatype = tensor.get("datatype") if isinstance(tensor.get("datatype"), str) else "FP32"
        shape = [d if isinstance(d, int) else 1 for d in shape]
        blob = _blob(datatype, shape, draw, clean)
        size = (
            len(blob)
            if clean
            else draw(
                st.one_of(
                    st.just(len(blob)),
                    st.just(len(blob)),
                    st.integers(-(2**63), 2**64),
                    st.sampled_from([0, -1, len(blob) + 1, 2**62, 1.5, True, "12", None]),
                )
            )
        )
        entry = {k: v for k, v in tensor.items() if k != "data"}
        entry["parameters"] = {**entry.get("parameters", {}), "binary_data_size": size}
        if not clean and draw(st.integers(0, 7)) == 0:
            entry["data"] = [1]  # both data and binary_data_size
        inputs.append(entry)
        blobs.append(blob)
    header: dict = {"inputs": inputs or [{"name": "x"}]}
    if draw(st.booleans()):
        output = st.booleans() if clean else st.one_of(st.booleans(), scalars)
        header["parameters"] = {"binary_data_output": draw(output)}
    head = json.dumps(header, allow_nan=False).encode()
    body = head + b"".join(blobs)
    if not clean and draw(st.integers(0, 9)) == 0:
        body += draw(st.binary(min_size=1, max_size=64))  # unclaimed trailing bytes
    hlen = (
        str(len(head))
        if clean
        else draw(
            st.one_of(
                st.just(str(len(head))),
                st.just(str(len(head))),
                st.sampled_from(["0", "-1", "", " ", "1e3", "0x10", "+3", str(len(body) + 1)]),
                st.integers(-(2**64), 2**64).map(str),
                st.integers(0, len(body)).map(str),
                header_text,
            )
        )
    )
    headers = {"Inference-Header-Content-Length": hlen, "Content-Type": "application/octet-stream"}
    return model, body, headers, clean
