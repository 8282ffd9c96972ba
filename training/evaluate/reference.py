"""The TF-IDF reference: word (1-2) + character (2-5) n-grams and a logistic regression.

Trained on the same prepared training split as the transformer (rows weighted as in
the transformer's loss, classes balanced), its threshold tuned on the validation split
for the same target precision. It is the bar the fine-tuned model must clear on every
dev set, and the cheap model of the leave-one-source-out table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from schemas.text import NormalizationSettings, normalize_text
from training.finetune.threshold import tune_threshold

NAME = "TF-IDF word 1-2 + char 2-5, logistic regression"


@dataclass
class TfidfReference:
    words: TfidfVectorizer
    chars: TfidfVectorizer
    model: LogisticRegression
    normalization: NormalizationSettings
    threshold: float = 0.5

    @classmethod
    def fit(
        cls,
        train: pd.DataFrame,
        *,
        normalization: NormalizationSettings | None = None,
        max_features: int = 200_000,
        seed: int = 0,
    ) -> TfidfReference:
        normalization = normalization or NormalizationSettings()
        words = TfidfVectorizer(
            ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=max_features
        )
        chars = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(2, 5),
            min_df=2,
            sublinear_tf=True,
            max_features=max_features,
        )
        texts = _texts(train["text"], normalization)
        features = hstack([words.fit_transform(texts), chars.fit_transform(texts)]).tocsr()
        labels = train["label"].to_numpy(dtype=int)
        weights = train["weight"].to_numpy(dtype=float) if "weight" in train else None
        model = LogisticRegression(C=4.0, class_weight="balanced", max_iter=1000, random_state=seed)
        model.fit(features, labels, sample_weight=weights)
        return cls(words, chars, model, normalization)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        normalized = _texts(pd.Series(list(texts), dtype=str), self.normalization)
        features = hstack([self.words.transform(normalized), self.chars.transform(normalized)])
        return np.asarray(self.model.predict_proba(features.tocsr())[:, 1])

    def tune(self, validation: pd.DataFrame, target_precision: float) -> float:
        scores = self.predict_proba(validation["text"].astype(str).tolist())
        self.threshold = tune_threshold(
            validation["label"].to_numpy(dtype=int), scores, target_precision
        )
        return self.threshold


def _texts(texts: pd.Series, normalization: NormalizationSettings) -> list[str]:
    return [normalize_text(str(t), normalization) for t in texts]
