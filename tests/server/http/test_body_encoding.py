"""Compressed request bodies (`Content-Encoding`), as Triton accepts them: gzip and deflate are
decompressed before decoding, within `max_body_bytes`; what cannot be decompressed is 400 and an
unknown encoding 415. The round trip with Triton's own client is in tests/e2e/test_triton_client.py."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from tests.server.http.helpers import assert_error

MLP = "/v2/models/mlp/infer"
BODY = json.dumps(
    {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 64], "data": [0.5] * 64}]}
).encode()


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def _post(client, data: bytes, encoding: str | None, path: str = MLP):
    headers = {"content-type": "application/json"}
    if encoding is not None:
        headers["content-encoding"] = encoding
    return client.post(path, content=data, headers=headers)


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("gzip", gzip.compress(BODY)),
        ("GZIP", gzip.compress(BODY)),
        ("deflate", zlib.compress(BODY)),
        ("deflate", _raw_deflate(BODY)),
        ("identity", BODY),
        (None, BODY),
    ],
)
def test_compressed_bodies_answer_as_plain_ones(client, encoding, data):
    plain = _post(client, BODY, None).json()["outputs"]
    r = _post(client, data, encoding)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"] == plain


def test_what_cannot_be_decompressed_is_refused_naming_the_encoding(client):
    assert_error(_post(client, BODY, "gzip"), 400, "not valid gzip data")
    assert_error(_post(client, gzip.compress(BODY)[:-12], "gzip"), 400, "truncated gzip")
    assert_error(_post(client, zlib.compress(BODY) + b"!!", "deflate"), 400, "after the end")
    assert_error(_post(client, BODY, "br"), 415, "Content-Encoding", "'br'")
    # the shop endpoints read their bodies the same way
    assert_error(_post(client, b'{"query": "x"}', "gzip", "/v1/search"), 400, "not valid gzip")


def test_a_small_body_that_inflates_past_the_limit_is_413(client):
    bomb = gzip.compress(b" " * (8 * 1024 * 1024))  # 8 MiB of spaces in ~8 KiB (limit 256 KiB)
    assert len(bomb) < 64 * 1024
    assert_error(_post(client, bomb, "gzip"), 413, "max_body_bytes", "decompressed")
