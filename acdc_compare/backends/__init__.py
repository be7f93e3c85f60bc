"""The backend wing: the only modules that talk to TransformerLens or transformers.

`bridge_loading` loads bridges; `bridge_config` reads their shape into a `ModelConfig` and refuses what the
engine does not implement; `transformer_lens` reads their weights into `ModelWeights` and runs them;
`bridge_patcher` builds the patcher of a bridge (the engine, or the hook-based fallback of `hook_patcher`);
`gguf` converts Llama-family GGUF files offline; `hooks` reads activations with the bridge's own hooks;
`tiny` builds tiny random bridges for tests."""

from acdc_compare.backends.bridge_config import UnsupportedModelError, model_config, model_name
from acdc_compare.backends.bridge_loading import (DEFAULT_MODEL, ModelLoadError, check_device, load_model,
                                                  load_tokenizer, quiet_loading)
from acdc_compare.backends.bridge_patcher import EngineMismatchError, make_patcher
from acdc_compare.backends.tiny import tiny_model
from acdc_compare.backends.transformer_lens import extract_weights, run_logits, tokenizer

__all__ = ["DEFAULT_MODEL", "EngineMismatchError", "ModelLoadError", "UnsupportedModelError", "check_device",
           "extract_weights", "load_model", "load_tokenizer", "make_patcher", "model_config", "model_name",
           "quiet_loading", "run_logits", "tiny_model", "tokenizer"]
