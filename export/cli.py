"""`shopserve export ...`: reached through the `shopserve.commands` entry point."""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import time
from functools import partial
from pathlib import Path

__all__ = ["main"]

# family -> (module, function, repository folders it publishes: models and pipelines); `all` runs
# them in this order (the ranker reads the recommender's retrieval model, so it comes after it;
# the score pipeline of each risk family is its own folder, /v1/score picks one by `task`)
FAMILIES = {
    "risk": ("export.risk", "export_risk", ["risk", "score"]),
    "cancellation_risk": (
        "export.cancellation",
        "export_cancellation_risk",
        ["cancellation_risk", "score_cancellation"],
    ),
    "recommender": ("export.recommender", "export_recommender", ["query_encoder", "recommend"]),
    "ranker": ("export.ranker", "export_ranker", ["ranker"]),
    "text": (
        "export.text",
        "export_text",
        ["classify_sentiment", "classify_recommended", "classify_department", "classify"],
    ),
    "search": ("export.search", "export_search", ["search_encoder", "search"]),
    "faq": ("export.faq", "export_faq", ["answer_encoder", "answer"]),
    "forecast": ("export.forecast", "export_forecast", ["forecast_model", "forecast"]),
}


def _demo(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="shopserve export demo",
        description="Build the small demo repository (onnx.helper models, no training).",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from export.demo import build_demo_repository

    build_demo_repository(args.out)
    print(f"demo repository written to {args.out}")
    return 0


def _family_parser(name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"shopserve export {name}",
        description="Train, distil, quantize and export to a model repository.",
    )
    p.add_argument("--out", type=Path, required=True, help="model repository to write into")
    p.add_argument("--quick", action="store_true", help="tiny models on data subsets (tests, CI)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where torch trains")
    p.add_argument(
        "--allow-regression", action="store_true", help="publish even if a quality gate fails"
    )
    p.add_argument("--force", action="store_true", help="rebuild models already in the repository")
    p.add_argument(
        "--tier",
        choices=["preview", "full"],
        default="full",
        help="preview: small models trained in a minute or two, served until the full tier lands",
    )
    if name in ("faq", "all"):
        p.add_argument(
            "--faq",
            type=Path,
            default=None,
            help="the shop's knowledge base, JSON lines (id, intent, question, answer, "
            "alternatives); default data/faq/entries.jsonl",
        )
    if name in ("forecast", "all"):
        p.add_argument(
            "--refit",
            action="store_true",
            help="forecast: serve the recipe refit on all the data (the card still evaluates "
            "the model trained before the test weeks, and says which is served)",
        )
    return p


def _cell(metrics: dict[str, float], variant: str) -> str:
    return f"{metrics[variant]:.4f}" if variant in metrics else "-"


def _summary(rows: list[dict]) -> str:
    lines = [
        f"{'model':<22} {'metric':<12} {'baseline':>9} {'seed':>8} {'teacher':>8} {'student':>8} {'int8':>8}  gate"
    ]
    for r in rows:
        v = r["rows"]
        lines.append(
            f"{r['model']:<22} {r['metric']:<12} {_cell(v, 'baseline'):>9} {_cell(v, 'seed'):>8} "
            f"{_cell(v, 'teacher'):>8} {_cell(v, 'student'):>8} {_cell(v, 'student-int8'):>8}  "
            f"{'pass' if r['gate'] else 'FAIL'}"
        )
    return "\n".join(lines)


def _options(name: str, argv: list[str]):
    from export.options import ExportOptions

    args = _family_parser(name).parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    opts = ExportOptions(
        out=args.out,
        quick=args.quick,
        seed=args.seed,
        device=args.device,
        allow_regression=args.allow_regression,
        tier=args.tier,
        faq=getattr(args, "faq", None),
        refit=getattr(args, "refit", False),
        command="shopserve export " + " ".join(shlex.quote(a) for a in [name, *argv]),
    )
    return opts, args.force


def _build(fam: str, opts, force: bool) -> str | None:
    """Build one family unless its folders are all published; the gate failure, if any."""
    from export.card import ExportError
    from export.repository import is_done, publish_batch

    module, func, folders = FAMILIES[fam]
    if not force and is_done(opts.out, folders, "full" if opts.quick else opts.tier):
        opts.log(
            f"[{fam}] already in {opts.out} ({', '.join(folders)}): kept (use --force to rebuild)"
        )
        return None
    t = time.perf_counter()
    opts.log(f"[{fam}] building ...")
    failure = None
    try:
        with publish_batch(opts.out):  # a family's folders land together
            getattr(importlib.import_module(module), func)(opts)
    except ExportError as e:
        failure = str(e)
        opts.log(failure)
    opts.log(f"[{fam}] done in {time.perf_counter() - t:.0f} s")
    return failure


def _families(name: str, argv: list[str]) -> int:
    from export.onnx_tools import offline_env

    offline_env()
    opts, force = _options(name, argv)
    t0 = time.perf_counter()
    failures = [
        f for fam in (FAMILIES if name == "all" else [name]) if (f := _build(fam, opts, force))
    ]
    if opts.summary:
        print(_summary(opts.summary))
    print(f"export {name}: {time.perf_counter() - t0:.0f} s, repository {opts.out}")
    if failures:
        print("quality gates failed:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    return 0


def _model(argv: list[str]) -> int:
    from export.user_model import main as user_main

    return user_main(argv)


def _synthetic(argv: list[str]) -> int:
    from export.synthetic import main as synth_main

    return synth_main(argv)


def _cards(argv: list[str]) -> int:
    """Print every card.md of a repository (what docs/models.md copies)."""
    p = argparse.ArgumentParser(prog="shopserve export cards", description=_cards.__doc__)
    p.add_argument("--repo", type=Path, required=True)
    args = p.parse_args(argv)
    for card in sorted(args.repo.glob("*/card.md")):
        print(card.read_text().replace("# ", "### ", 1))
    return 0


_COMMANDS = {"demo": _demo, "model": _model, "synthetic": _synthetic, "cards": _cards}
_COMMANDS.update({f: partial(_families, f) for f in [*FAMILIES, "all"]})


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in _COMMANDS:
        print("usage: shopserve export {" + ",".join(sorted(_COMMANDS)) + "} ...")
        return 2
    return _COMMANDS[argv[0]](argv[1:])
