"""The backend wing: the only modules that talk to TransformerLens or transformers.

`transformer_lens` loads bridges and reads them into `ModelConfig` / `ModelWeights`; `gguf` converts
Llama-family GGUF files offline; `hooks` reads activations with the bridge's own hooks; `tiny` builds tiny
random bridges for tests."""

from acdc_compare.backends.transformer_lens import (
    DEFAULT_MODEL,
    EngineMismatchError,
    ModelLoadError,
    UnsupportedModelError,
    check_device,
    extract_weights,
    load_model,
    load_tokenizer,
    make_patcher,
    model_config,
    model_name,
    run_logits,
    tokenizer,
)
from acdc_compare.backends.tiny import tiny_model

__all__ = ["DEFAULT_MODEL", "EngineMismatchError", "ModelLoadError", "UnsupportedModelError", "check_device",
           "extract_weights", "load_model", "load_tokenizer", "make_patcher", "model_config", "model_name",
           "run_logits", "tiny_model", "tokenizer"]
