"""Prepare: input contract, cleaning, language, dedup, grouped split, audit, report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from schemas.errors import ConfigurationError
from schemas.text import NormalizationSettings
from training.config import PrepareConfig
from training.prepare.audit import audit
from training.prepare.clean import clean_frame, clean_text, length_bucket
from training.prepare.dedup import deduplicate
from training.prepare.run import prepare, read_split
from training.prepare.sentiment import load_sentiment_corpus
from training.prepare.split import grouped_split
from training.prepare.tables import InputSpec, read_labelled


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_input_spec_parses_optional_weight() -> None:
    assert InputSpec.parse("data/a.csv:2.5") == InputSpec(Path("data/a.csv"), 2.5)
    assert InputSpec.parse("data/a.csv") == InputSpec(Path("data/a.csv"), 1.0)
    with pytest.raises(ConfigurationError):
        InputSpec.parse("a.csv:0")


def test_labelled_table_contract(tmp_path: Path) -> None:
    table = read_labelled(
        InputSpec(
            write(
                tmp_path / "feedback.csv", "text|label|language\nHello there friend|0|en\nNA|1|\n"
            ),
            3.0,
        )
    )
    assert table["text"].tolist() == ["Hello there friend", "NA"]  # "NA" stays a text
    assert table["weight"].tolist() == [3.0, 3.0]
    assert table["origin"].tolist() == ["feedback.csv", "feedback.csv"]
    with pytest.raises(ConfigurationError, match="label"):
        read_labelled(InputSpec(write(tmp_path / "bad.csv", "text|label\nx y z|2\n")))
    with pytest.raises(ConfigurationError, match="required column"):
        read_labelled(InputSpec(write(tmp_path / "nolabel.csv", "text|lang\nx y z|en\n")))


def test_generator_output_is_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path / "gen.csv",
        "text,label,state,language,category,bucket,word_count\n"
        '"Je ne vois plus aucun avenir, tout est gris",1,unhealthy,fr,Future,9-15,9\n',
    )
    table = read_labelled(InputSpec(path))
    assert table.loc[0, "category"] == "Future"
    assert table.loc[0, "label"] == 1


def test_cleaning_language_and_buckets() -> None:
    assert clean_text("  I\\u2019m   tired \n") == "I’m tired"
    assert [length_bucket(n) for n in (3, 8, 9, 90, 91)] == [
        "3-8",
        "3-8",
        "9-15",
        "61-90",
        "out-of-range",
    ]
    frame = pd.DataFrame(
        {
            "text": [
                "Ich fühle mich heute sehr leer und müde",
                "   ",
                "Oggi mi sento davvero stanco e triste",
                "ok",
            ],
            "label": [1, 0, 1, 0],
            "language": ["", "", "", "it"],
            "category": "",
            "source": "s",
            "origin": "o",
            "weight": 1.0,
        }
    )
    cleaned, counts = clean_frame(frame)
    assert counts["empty"] == 1
    assert cleaned["language"].tolist()[:2] == ["de", "it"]
    assert "word_count" in cleaned and "bucket" in cleaned


def test_dedup_exact_near_and_conflicting() -> None:
    base = "I have not slept properly in weeks and nothing feels worth doing anymore"
    frame = pd.DataFrame(
        {
            "text": [
                base,
                base.upper() + "!!",
                base + " today",
                "Completely different happy text here",
                "Same text different labels here",
                "Same text different labels here",
            ],
            "label": [1, 1, 1, 0, 0, 1],
            "weight": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        }
    )
    kept, counts = deduplicate(frame, drop_threshold=0.8, group_threshold=0.5)
    assert counts["exact_duplicates"] == 1
    assert counts["conflicting_label_duplicates"] == 2
    assert counts["near_duplicates"] == 1
    assert kept["text"].tolist() == [base, "Completely different happy text here"]


def test_grouped_split_keeps_groups_together_and_stratifies() -> None:
    n = 600
    frame = pd.DataFrame(
        {
            "language": [["en", "de", "fr"][i % 3] for i in range(n)],
            "label": [i % 2 for i in range(n)],
            "category": "",
            "bucket": "9-15",
            "group": [i // 3 for i in range(n)],  # groups of three
        }
    )
    split = grouped_split(frame, (0.7, 0.2, 0.1), seed=1)
    assert (frame.assign(split=split).groupby("group")["split"].nunique() == 1).all()
    shares = split.value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.7, abs=0.05)
    assert shares["test"] == pytest.approx(0.1, abs=0.05)
    labels = frame.assign(split=split).groupby("split")["label"].mean()
    assert labels.between(0.4, 0.6).all()


def test_sentiment_corpus_from_local_folders(tmp_path: Path) -> None:
    (tmp_path / "english").mkdir()
    write(tmp_path / "english" / "train_text.txt", "@user great game http\nso sad today\n")
    write(tmp_path / "english" / "train_labels.txt", "2\n0\n")
    corpus = load_sentiment_corpus(tmp_path)
    assert corpus["label"].tolist() == [0, 0]  # negative sentiment is not depression
    assert set(corpus["language"]) == {"en"}
    with pytest.raises(ConfigurationError):
        load_sentiment_corpus(tmp_path / "missing-and-no-hub")


def test_audit_shows_the_tweet_shortcut_and_normalisation_removes_it() -> None:
    frame = pd.DataFrame(
        {
            "text": [f"@user game night {i} http" for i in range(20)]
            + [f"I feel worthless every day {i}" for i in range(20)]
            + [f"A calm afternoon walk {i}" for i in range(20)],
            "label": [0] * 20 + [1] * 20 + [0] * 20,
            "source": "s",
        }
    )
    result = audit(frame, NormalizationSettings(), seed=0)
    raw = result["raw"]
    assert raw.query("feature == 'mention' and value == 'True'")["label1_rate"].item() == 0.0
    assert result["shortcut_auc_raw"] > 0.6
    assert result["shortcut_auc_normalized"] == pytest.approx(0.5)


def test_prepare_writes_splits_report_and_metadata(tmp_path: Path, sample_csv: Path) -> None:
    out = tmp_path / "data"
    result = prepare([InputSpec(sample_csv, 2.0)], out, PrepareConfig(seed=3), log=False)
    assert sum(result.rows.values()) > 400
    assert result.rows["train"] > result.rows["validation"] > result.rows["test"] > 0
    train, test = read_split(out, "train"), read_split(out, "test")
    assert set(train["group"]).isdisjoint(set(test["group"]))
    assert train["word_count"].between(3, 90).all()
    assert set(train["language"]) == {"en", "de", "fr", "it", "pt", "es"}
    assert (train["weight"] == 2.0).all()
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["rows"] == result.rows
    assert "Distribution by language" in (out / "report.txt").read_text()
    assert "Shortcut AUC" in (out / "audit.txt").read_text()
    assert (out / "plots" / "distribution_language.png").is_file()
    prepare([InputSpec(sample_csv, 2.0)], tmp_path / "again", PrepareConfig(seed=3), log=False)
    assert read_split(tmp_path / "again", "test")["text"].tolist() == test["text"].tolist()


def test_config_is_validated() -> None:
    with pytest.raises(ConfigurationError):
        PrepareConfig(split_ratios=(0.5, 0.2, 0.1))
    with pytest.raises(ConfigurationError):
        PrepareConfig(min_words=10, max_words=5)
