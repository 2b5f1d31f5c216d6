"""The served search against export's scoring: the lexical index equals scikit-learn's TF-IDF,
the `search/` folder export writes is scored by the server exactly as export scored it, and the
quick build answers /v1/search through the app (with its latency measured in-process)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest

from export.options import ExportOptions
from export.search import write_search_pipeline
from export.search_data import Catalogue, load_catalogue
from export.search_eval import lexical_scores, ranked, semantic_scores, tfidf_sklearn_scores
from kernels.lexical import build_bm25, build_tfidf, fuse_scores
from server.budget import Budget
from server.contract.model_config import ModelConfig
from server.contract.pipelines import SearchSpec, load_pipeline_spec
from server.pipelines.search import SearchPipeline
from server.schemas.v1 import SearchRequest
from tests.server.pipelines.fakes import FakeModel, FakeModelSource, tensor
from tests.server.pipelines.shop import write_tokenizer

QUERIES = ["heart t-light holder", "chistmas decoraton", "gift for a tea lover", "RED  mug", "zz"]


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(quick=True)


def test_tfidf_index_equals_scikit_learn(catalogue: Catalogue):
    texts = catalogue.texts
    ours = lexical_scores(build_tfidf(texts), QUERIES)
    np.testing.assert_allclose(ours, tfidf_sklearn_scores(texts, QUERIES), atol=1e-5)


def _encoder(query_embedding: np.ndarray) -> FakeModel:
    """A search encoder that answers every query with one fixed unit embedding."""
    config = ModelConfig(
        name="search_encoder",
        max_batch_size=8,
        input=[tensor("input_ids", "TYPE_INT64", [-1])],
        output=[tensor("embedding", "TYPE_FP32", [query_embedding.shape[0]])],
    )
    fn = lambda inputs: {  # noqa: E731
        "embedding": np.tile(query_embedding, (len(inputs["input_ids"]), 1)).astype(np.float32)
    }
    return FakeModel(config, fn, Path("."))


@pytest.mark.parametrize("bm25", [False, True])
def test_server_scores_the_written_folder_as_export_did(
    catalogue: Catalogue, tmp_path: Path, bm25: bool
):
    rng = np.random.default_rng(0)
    products = rng.standard_normal((len(catalogue), 16)).astype(np.float32)
    products /= np.linalg.norm(products, axis=1, keepdims=True)
    index = build_bm25(catalogue.texts) if bm25 else build_tfidf(catalogue.texts)
    tok = tmp_path / "tok.json"
    write_tokenizer(tok)
    opts = ExportOptions(out=tmp_path / "repo")
    write_search_pipeline(opts, catalogue, products, tok.read_text(), index, 0.35)
    name, spec = load_pipeline_spec(opts.out / "search" / "pipeline.toml")
    assert isinstance(spec, SearchSpec) and spec.lexical_weight == 0.35
    assert spec.lexical is not None and spec.lexical.weighting == index.weighting
    q = products[7]
    models = FakeModelSource({"search_encoder": _encoder(q)})
    pipe = SearchPipeline.load(spec, opts.out / "search" / "1", models)
    for query in QUERIES:
        want = fuse_scores(lexical_scores(index, [query]), semantic_scores(q[None], products), 0.35)
        top = ranked(want)[0]
        res = asyncio.run(pipe.run(SearchRequest(query=query, k=10), Budget(5000)))
        assert [it.item_id for it in res.items] == [catalogue.codes[r] for r in top]
        assert [it.title for it in res.items] == [catalogue.descriptions[r] for r in top]
        np.testing.assert_allclose([it.score for it in res.items], want[0, top], atol=1e-5)


@pytest.mark.timeout(1200)
def test_quick_repository_answers_v1_search(quick_repo: Path):
    from litestar.testing import TestClient

    from server.app import create_app
    from server.settings import Settings

    _, spec = load_pipeline_spec(quick_repo / "search" / "pipeline.toml")
    assert isinstance(spec, SearchSpec) and spec.lexical is not None
    settings = Settings(
        model_repository=str(quick_repo), device="cpu", budgets_ms={"search": 5000.0}
    )
    titles = json.loads((quick_repo / "search" / "1" / spec.catalog.item_titles).read_text())
    with TestClient(create_app(settings)) as client:
        for title in titles[10:15]:
            r = client.post("/v1/search", json={"query": title.lower(), "k": 5})
            assert r.status_code == 200, r.text
            items = r.json()["items"]
            assert title in {it["title"] for it in items}  # an exact title is found
        assert "lexical;dur=" in r.headers["server-timing"]
        times = []
        for query in ("heart holder", "chistmas lights", "gift for a tea lover") * 10:
            t0 = time.perf_counter()
            assert client.post("/v1/search", json={"query": query}).status_code == 200
            times.append(time.perf_counter() - t0)
        print(f"/v1/search in-process p50 {np.median(times) * 1e3:.2f} ms")
