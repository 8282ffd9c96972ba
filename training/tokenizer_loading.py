"""Load a Hugging Face tokenizer the same way everywhere in training."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_tokenizer(name_or_path: str | Path) -> Any:
    """``AutoTokenizer.from_pretrained`` without a misleading warning.

    transformers 4.57 warns that XLM-R-style tokenizers (the offline e5 encoder's
    included) have "an incorrect regex pattern" meant for a Mistral model; it does not
    apply to them (0 unknown tokens on all six languages), so it is silenced here only.
    """
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(str(name_or_path))
    finally:
        hf_logging.set_verbosity(previous)
