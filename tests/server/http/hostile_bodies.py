"""Hostile bodies beyond the V2 codec: JSON nested past any limit, /v1 bodies and admin
bodies (strategies for test_hostile_codec.py)."""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import strategies as st

from tests.server.http.hostile_strategies import (
    MODELS,
    json_values,
    names,
    scalars,
    timeout_headers,
)
from tests.server.pipelines.shop import SESSION


@st.composite
def deep_bodies(draw):
    """JSON nested up to 2000 deep, in `data`, in other fields and as the whole body."""
    depth = draw(st.integers(1, 2000))
    nested = b"[" * depth + draw(st.sampled_from([b"", b"1", b'"a"', b"{}"])) + b"]" * depth
    where = draw(st.sampled_from(["data", "shape", "id", "parameters", "body", "object"]))
    base = {"name": "features", "shape": [1, 64], "datatype": "FP32", "data": "@@"}
    if where == "data":
        body = json.dumps({"inputs": [base]}).encode()
    elif where == "shape":
        body = json.dumps({"inputs": [{**base, "shape": "@@", "data": [0.0] * 64}]}).encode()
    elif where == "id":
        body = json.dumps({"id": "@@", "inputs": [{**base, "data": [0.0] * 64}]}).encode()
    elif where == "parameters":
        body = json.dumps({"parameters": {"p": "@@"}, "inputs": [base]}).encode()
    elif where == "object":
        body = b'{"a":' * depth + b"1" + b"}" * depth
        return draw(st.sampled_from(ROUTES_WITH_BODIES)), body
    else:
        return draw(st.sampled_from(ROUTES_WITH_BODIES)), nested
    return "/v2/models/mlp/infer", body.replace(b'"@@"', nested)


ROUTES_WITH_BODIES = [
    "/v2/models/mlp/infer",
    "/v2/models/simple/versions/1/infer",
    "/v2/repository/index",
    "/v2/repository/models/nope/load",
    "/v2/repository/models/nope/unload",
    "/v1/score",
    "/v1/classify",
    "/v1/search",
    "/v1/recommend",
    "/v1/answer",
]


SESSION_FIELDS = list(SESSION)  # every field of server/schemas/v1.py::Session
V1_FIELDS = {
    "score": {
        "session": st.fixed_dictionaries({}, optional=dict.fromkeys(SESSION_FIELDS, scalars))
    },
    "classify": {
        "texts": st.lists(st.one_of(st.text(max_size=30), scalars), max_size=70),
        "task": st.one_of(st.text(max_size=70), scalars),
    },
    "search": {
        "query": st.one_of(st.text(max_size=600), scalars),
        "k": st.one_of(st.integers(-5, 200), scalars),
        "filters": st.one_of(
            st.fixed_dictionaries({}, optional={"price_min": scalars, "price_max": scalars}),
            json_values,
        ),
    },
    "recommend": {
        "history": st.lists(st.one_of(st.text(max_size=70), scalars), max_size=20),
        "user_id": st.one_of(st.text(max_size=70), scalars),
        "k": st.one_of(st.integers(-5, 200), scalars),
        "filters": json_values,
    },
    "answer": {
        "question": st.one_of(st.text(max_size=600), scalars),
        "k": st.one_of(st.integers(-5, 30), scalars),
    },
}


@st.composite
def v1_requests(draw):
    endpoint = draw(st.sampled_from(sorted(V1_FIELDS)))
    fields = {**V1_FIELDS[endpoint], "budget_ms": st.one_of(st.integers(-5, 70_000), scalars)}
    kind = draw(st.sampled_from(["shaped", "shaped", "json", "bytes"]))
    if kind == "shaped":
        obj = draw(st.fixed_dictionaries({}, optional=fields))
        if draw(st.integers(0, 5)) == 0:
            obj[draw(names)] = draw(json_values)  # an unknown field
        body = json.dumps(obj, allow_nan=False).encode()
    elif kind == "json":
        body = json.dumps(draw(json_values), allow_nan=False).encode()
    else:
        body = draw(st.binary(max_size=256))
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", "x/y"]))}
    if draw(st.integers(0, 3)) == 0:
        headers["X-Request-Timeout-Ms"] = draw(timeout_headers)
    return f"/v1/{endpoint}", body, headers


@st.composite
def admin_requests(draw):
    """Index, load and unload with random bodies; never unloads a served model."""
    kind = draw(st.sampled_from(["index", "load", "unload"]))
    if kind == "index":
        path = "/v2/repository/index"
    else:
        target = draw(st.one_of(names.filter(lambda n: n not in MODELS), st.just("mlp")))
        if kind == "unload" and target in MODELS:
            target = "no_such_model"
        path = f"/v2/repository/models/{quote(target, safe='')}/{kind}"
    body = draw(
        st.one_of(
            st.just(b""),
            st.binary(max_size=64),
            json_values.map(lambda v: json.dumps(v, allow_nan=False).encode()),
            st.fixed_dictionaries(
                {}, optional={"ready": scalars, "parameters": json_values, "x": scalars}
            ).map(lambda v: json.dumps(v, allow_nan=False).encode()),
        )
    )
    auth = draw(st.sampled_from(["Bearer t", "Bearer t", "Bearer x", "bearer  t ", "t", ""]))
    return path, body, {"Authorization": auth} if auth else {}
