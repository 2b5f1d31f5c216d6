"""Request bodies drawn from the real data in `data/` (read with the standard library only: the
load generator talks HTTP and imports nothing of the server)."""

from __future__ import annotations

import csv
import gzip
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

__all__ = ["Payloads"]

DATA = Path(__file__).resolve().parents[1] / "data"
_RETAIL_ROWS = 120_000  # enough customers and items for realistic histories, read in ~1 s


def _jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


CLASSIFY_TASKS = ("sentiment", "recommended", "department")


class Payloads:
    def __init__(
        self, seed: int = 0, data: Path = DATA, classify_tasks: tuple[str, ...] = CLASSIFY_TASKS
    ) -> None:
        """`classify_tasks`: the heads classify bodies name (`shopserve loadtest` passes the
        ones the server serves)."""
        self.rng = random.Random(seed)
        self.classify_tasks = list(classify_tasks) or list(CLASSIFY_TASKS)
        self._retail(data / "online-retail-uci" / "online_retail.csv.gz")
        self._reviews(
            data / "womens-ecommerce-clothing-reviews" / "womens_clothing_ecommerce_reviews.csv.gz"
        )
        self._sessions(data / "online-shoppers-intention" / "online_shoppers_intention.csv.gz")
        self._questions(data / "faq")

    def _retail(self, path: Path) -> None:
        histories: dict[str, list[str]] = defaultdict(list)
        titles: dict[str, str] = {}
        counts: Counter[str] = Counter()
        units: Counter[str] = Counter()
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            for i, row in enumerate(csv.DictReader(f)):
                if i >= _RETAIL_ROWS:
                    break
                code, customer = row["StockCode"], row["CustomerID"]
                if row["InvoiceNo"].startswith("C") or not customer or not row["Description"]:
                    continue
                histories[customer].append(code)
                titles.setdefault(code, row["Description"].strip())
                counts[code] += 1
                units[code] += max(0, int(float(row["Quantity"] or 0)))
        self.users = [u for u, h in histories.items() if len(h) >= 2]
        self.histories = {u: histories[u] for u in self.users}
        ranked = [c for c, _ in counts.most_common()]
        self.popular = ranked[:200]
        self.long_tail = ranked[len(ranked) // 2 :] or ranked
        self.queries = sorted({t for t in titles.values() if len(t.split()) >= 2})
        # items a planner asks demand forecasts for: the 50 that sold the most units here
        self.stocked = [c for c, _ in units.most_common(50)]

    def _reviews(self, path: Path) -> None:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            self.reviews = [
                r["Review Text"] for r in csv.DictReader(f) if (r["Review Text"] or "").strip()
            ]

    def _sessions(self, path: Path) -> None:
        ints = {
            "Administrative",
            "Informational",
            "ProductRelated",
            "OperatingSystems",
            "Browser",
            "Region",
            "TrafficType",
        }
        text = {"Month", "VisitorType"}
        self.sessions = []
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                s: dict[str, object] = {}
                for k, v in r.items():
                    if k == "Revenue":
                        continue
                    if k == "Weekend":
                        s[k] = v.upper() == "TRUE"
                    elif k in text:
                        s[k] = v
                    elif k in ints:
                        s[k] = int(v)
                    else:
                        s[k] = float(v)
                self.sessions.append(s)

    def _questions(self, faq: Path) -> None:
        """The demo knowledge base's phrasings (each entry's question and alternatives), less
        any that equals a held-out question: the held-out questions' test half is kept for the
        answer card alone."""
        held_out = {r["question"].strip().lower() for r in _jsonl(faq / "heldout_questions.jsonl")}
        self.questions = [
            q
            for e in _jsonl(faq / "entries.jsonl")
            for q in (e["question"], *e.get("alternatives", []))
            if q.strip().lower() not in held_out
        ]

    # -- bodies -------------------------------------------------------------------------------------

    def recommend(self) -> dict:
        r = self.rng.random()
        if r < 0.6:  # a real customer's recent purchases
            h = self.histories[self.rng.choice(self.users)]
            history = h[-self.rng.randint(1, min(20, len(h))) :]
        elif r < 0.8:  # popular items
            history = self.rng.sample(self.popular, self.rng.randint(1, 5))
        else:  # long-tail items
            history = self.rng.sample(
                self.long_tail, min(len(self.long_tail), self.rng.randint(1, 5))
            )
        body: dict = {"history": history, "k": 10}
        if self.rng.random() < 0.2:
            body["filters"] = {"price_max": round(self.rng.uniform(2, 20), 2)}
        return body

    def search(self) -> dict:
        words = self.rng.choice(self.queries).lower().split()
        n = self.rng.randint(1, min(3, len(words)))
        start = self.rng.randint(0, len(words) - n)
        return {"query": " ".join(words[start : start + n]), "k": 10}

    def classify(self) -> dict:
        n = 1 if self.rng.random() < 0.7 else self.rng.randint(2, 8)
        return {
            "texts": [self.rng.choice(self.reviews)[:5000] for _ in range(n)],
            "task": self.rng.choice(self.classify_tasks),
        }

    def score(self) -> dict:
        return {"session": self.rng.choice(self.sessions)}

    def answer(self) -> dict:
        """One phrasing, or (a fifth of the time) two: customers often write several
        sentences."""
        n = 1 if self.rng.random() < 0.8 else 2
        return {"question": " ".join(self.rng.sample(self.questions, n)), "k": 3}

    def forecast(self) -> dict:
        """A planner's question: the next week, fortnight or four weeks of one stocked item;
        a tenth of them a back-test from the start of the served model's test weeks."""
        body: dict = {
            "item_id": self.rng.choice(self.stocked),
            "horizon_days": self.rng.choice([7, 7, 14, 28]),
        }
        if self.rng.random() < 0.1:
            body["as_of"] = "2011-11-10"
        return body

    def mlp(self) -> dict:
        return {
            "inputs": [
                {
                    "name": "features",
                    "shape": [1, 64],
                    "datatype": "FP32",
                    "data": [self.rng.gauss(0, 1) for _ in range(64)],
                }
            ]
        }
