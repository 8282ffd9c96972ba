"""Draw the demo stream from the shared seed data (run once by a maintainer; seeded).

    python deploy/demo/make_demo_stream.py ../shared/data/seed/labelled.csv

Takes 8 texts per language (4 per label where available) that are NOT in
training/sample_data/sample.csv, so that the demo classifies texts its model has not
seen. Output: deploy/demo/stream.jsonl (one SubmittedText-shaped object per line,
without message_id: the demo assigns fresh ids on every run).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pandas as pd

from schemas.text import LANGUAGES as LANGS
from schemas.text import resolve_language

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent.parent / "training" / "sample_data" / "sample.csv"


def main(seed_csv: Path) -> None:
    seed = pd.read_csv(seed_csv, sep="|").dropna()
    taken = set(pd.read_csv(SAMPLE, sep="|")["text"])
    seed = seed[~seed["text"].isin(taken)]
    seed = seed[seed["text"].str.split().str.len().between(4, 60)]
    seed["language"] = [resolve_language(t) for t in seed["text"]]
    rng = random.Random(7)
    rows = []
    for lang in LANGS:
        for label in (0, 1):
            pool = seed[(seed["language"] == lang) & (seed["label"] == label)]["text"].tolist()
            for text in rng.sample(pool, min(4, len(pool))):
                rows.append(
                    {
                        "text": text,
                        "language": lang,
                        "source": "demo-forum",
                        "author_ref": f"demo-author-{rng.randrange(40)}",
                        "metadata": {"expected_label": int(label)},
                    }
                )
    rng.shuffle(rows)
    out = HERE / "stream.jsonl"
    out.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
