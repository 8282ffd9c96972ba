"""Rebuild sample.csv from the shared seed data (run once by hand; the output is committed).

Draws a small set balanced over the six languages and both labels, plus a few
tweet-style rows of both labels so that tests see the tweet shortcut. Seeded.

    .venv/bin/python training/sample_data/make_sample.py ../shared/data/seed/labelled.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from schemas.text import LANGUAGES, resolve_language

PER_CELL = 35  # rows per (language, label) of plain texts
TWEETS_PER_LANGUAGE = 5  # extra label-0 tweet-style rows per language
SEED = 20240601
TWEET = r"@user|http|#"


def draw(source: Path) -> pd.DataFrame:
    table = pd.read_csv(source, sep="|")
    table["language"] = [resolve_language(text) for text in table["text"]]
    table = table[table["language"].isin(LANGUAGES)].drop_duplicates("text")
    tweet = table["text"].str.contains(TWEET, regex=True)
    parts = []
    for language in LANGUAGES:
        in_language = table["language"] == language
        for label in (0, 1):
            cell = table[in_language & ~tweet & (table["label"] == label)]
            parts.append(cell.sample(n=min(PER_CELL, len(cell)), random_state=SEED))
        tweets = table[in_language & tweet & (table["label"] == 0)]
        parts.append(tweets.sample(n=TWEETS_PER_LANGUAGE, random_state=SEED))
    # Every tweet-style text labelled 1 (there are very few) so the audit has both labels.
    parts.append(table[tweet & (table["label"] == 1)])
    sample = pd.concat(parts).sample(frac=1.0, random_state=SEED)
    sample["origin"] = "seed/labelled.csv"
    return sample[["text", "label", "language", "origin"]].reset_index(drop=True)


if __name__ == "__main__":
    out = Path(__file__).with_name("sample.csv")
    draw(Path(sys.argv[1])).to_csv(out, sep="|", index=False)
    print(f"wrote {out}")
