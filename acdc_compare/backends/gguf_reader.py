"""Reading a Llama-family GGUF file: opening it, decoding its metadata, the model's shape, and its tensors
dequantized to float32 (the `gguf` package does the decoding; it is imported inside the functions)."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Any

import numpy as np

_MISSING = object()


class GGUFModelError(RuntimeError):
    """A GGUF file cannot be located, read, or converted into a Llama model directory."""


@dataclass(frozen=True)
class LlamaShape:
    """Architecture hyperparameters read from a GGUF file's `llama.*` metadata."""

    n_layers: int
    d_model: int
    d_mlp: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    rope_theta: float
    rms_norm_eps: float
    context_length: int


def open_reader(source: pathlib.Path) -> Any:
    """Open a GGUFReader and check that the file describes a llama-architecture model."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(source)
    except (ValueError, OSError, IndexError, KeyError) as error:
        raise GGUFModelError(f"{source} could not be read as a GGUF file ({error}); is it truncated?") from error
    architecture = read_field(reader, "general.architecture", source)
    if architecture != "llama":
        raise GGUFModelError(
            f"{source} holds a {architecture!r} model; only llama-family GGUF files "
            "(general.architecture = 'llama', e.g. Llama, SmolLM2, Mistral) can be converted"
        )
    return reader


def read_field(reader: Any, key: str, source: pathlib.Path, default: Any = _MISSING) -> Any:
    """Decode one metadata value (scalar, string, or array of either) from a GGUFReader."""
    from gguf import GGUFValueType

    field = reader.fields.get(key)
    if field is None:
        if default is _MISSING:
            raise GGUFModelError(f"{source} lacks the GGUF metadata key {key!r} needed for conversion")
        return default
    kind = field.types[0]
    if kind == GGUFValueType.ARRAY:
        item_kind = field.types[-1]
        return [_decode_part(field.parts[i], item_kind) for i in field.data]
    return _decode_part(field.parts[field.data[0]], kind)


def _decode_part(part: np.ndarray, kind: Any) -> Any:
    from gguf import GGUFValueType

    if kind == GGUFValueType.STRING:
        return bytes(part).decode("utf-8")
    return part[0].item()


def _float32_value(value: float) -> float:
    """The shortest decimal for a float32-stored value (1e-5, not 9.999999747378752e-06)."""
    return float(str(np.float32(value)))


def read_shape(reader: Any, source: pathlib.Path) -> LlamaShape:
    """The model's hyperparameters from the `llama.*` metadata; settings the converter lacks are refused."""

    def get(key: str, default: Any = _MISSING) -> Any:
        return read_field(reader, f"llama.{key}", source, default)

    d_model = int(get("embedding_length"))
    n_heads = int(get("attention.head_count"))
    d_head = int(get("attention.key_length", d_model // n_heads))
    if int(get("attention.value_length", d_head)) != d_head:
        raise GGUFModelError(f"{source}: key and value head sizes differ, which LlamaForCausalLM does not support")
    if int(get("rope.dimension_count", d_head)) != d_head:
        raise GGUFModelError(f"{source}: partial rotary embeddings are not supported by this converter")
    if get("rope.scaling.type", "none") not in ("none", ""):
        raise GGUFModelError(f"{source}: rope scaling is not supported by this converter")
    return LlamaShape(
        n_layers=int(get("block_count")),
        d_model=d_model,
        d_mlp=int(get("feed_forward_length")),
        n_heads=n_heads,
        n_kv_heads=int(get("attention.head_count_kv", n_heads)),
        d_head=d_head,
        rope_theta=_float32_value(get("rope.freq_base", 10000.0)),
        rms_norm_eps=_float32_value(get("attention.layer_norm_rms_epsilon")),
        context_length=int(get("context_length")),
    )


def dequantized(tensor: Any) -> np.ndarray:
    """A GGUF tensor as a float32 array in numpy/PyTorch layout (GGUF lists dimensions reversed)."""
    from gguf.quants import dequantize

    values = dequantize(tensor.data, tensor.tensor_type)
    numpy_shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))
    return np.array(values, dtype=np.float32).reshape(numpy_shape)
