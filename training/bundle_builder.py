"""Assemble a model bundle directory (the service's only input)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tokenizers import Tokenizer

from schemas.bundle import MODEL_CARD, MODEL_FILE, TOKENIZER_FILE, BundleManifest, write_manifest
from training.model_card import render_model_card
from training.tokenizer_loading import load_tokenizer


def bundle_tokenizer(model_dir: Path, max_length: int) -> Tokenizer:
    """The fast tokenizer with truncation and batch-longest padding built in.

    A runner that only calls ``Tokenizer.from_file(...).encode_batch`` gets inputs
    exactly like training's: truncated to ``max_length``, padded to the batch.
    """
    hf = load_tokenizer(model_dir)
    tokenizer = Tokenizer.from_str(hf.backend_tokenizer.to_str())
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=int(hf.pad_token_id), pad_token=str(hf.pad_token))
    return tokenizer


def write_bundle(
    directory: Path, model: Path, tokenizer: Tokenizer, manifest: BundleManifest
) -> BundleManifest:
    """Copy the graph and tokenizer in, write the card, then bundle.json with its hash."""
    directory.mkdir(parents=True, exist_ok=True)
    if model.resolve() != (directory / MODEL_FILE).resolve():
        shutil.copyfile(model, directory / MODEL_FILE)
    tokenizer.save(str(directory / TOKENIZER_FILE))
    (directory / MODEL_CARD).write_text(render_model_card(manifest), encoding="utf-8")
    return write_manifest(directory, manifest)
