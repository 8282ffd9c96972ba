"""Moved to :mod:`schemas.text` (language list, detection, normalisation, dedup key).

Kept only so that imports written before the move keep working; import from
``schemas.text``.
"""

from schemas.text import NormalizationSettings, normalize_text

__all__ = ["NormalizationSettings", "normalize_text"]
