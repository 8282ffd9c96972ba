"""Read the seed files (categories, testimonials) from `DataSettings.seed_dir`."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import ConfigurationError

CATEGORIES_FILE = "mental_health_categories.csv"
TESTIMONIALS_FILE = "depression_resilience_testimonials.csv"


@dataclass(frozen=True)
class Category:
    name: str
    negative: str
    positive: str


@dataclass(frozen=True)
class Testimonial:
    """One negative/positive pair; the originals are in Spanish."""

    negative: str
    positive: str
    category: str


@dataclass(frozen=True)
class Seeds:
    categories: dict[str, Category]
    testimonials: tuple[Testimonial, ...]

    def category(self, name: str) -> Category:
        try:
            return self.categories[name]
        except KeyError:
            raise ConfigurationError(
                f"category {name!r} is not in {CATEGORIES_FILE}; known: {sorted(self.categories)}"
            ) from None


def _rows(path: Path, required: set[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise ConfigurationError(
            f"seed file {path} not found: set DEPDETECT_DATA__SEED_DIR to the folder holding it"
        )
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = required - set(reader.fieldnames or ())
        if missing:
            raise ConfigurationError(f"{path} lacks columns {sorted(missing)}")
        return [{key: (value or "").strip() for key, value in row.items()} for row in reader]


def load_seeds(seed_dir: Path) -> Seeds:
    categories = {
        row["name"]: Category(row["name"], row["negative_description"], row["positive_description"])
        for row in _rows(
            seed_dir / CATEGORIES_FILE, {"name", "negative_description", "positive_description"}
        )
    }
    testimonials = tuple(
        Testimonial(row["negative_testimonial"], row["positive_testimonial"], row["category"])
        for row in _rows(
            seed_dir / TESTIMONIALS_FILE,
            {"negative_testimonial", "positive_testimonial", "category"},
        )
        if row["negative_testimonial"] and row["positive_testimonial"]
    )
    if not categories or not testimonials:
        raise ConfigurationError(f"seed files in {seed_dir} are empty")
    return Seeds(categories=categories, testimonials=testimonials)
