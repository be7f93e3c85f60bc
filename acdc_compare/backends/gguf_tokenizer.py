"""Rebuilding a GGUF file's GPT-2-style byte-level BPE tokenizer, from its metadata, as a transformers fast
tokenizer (so the converted directory loads with `AutoTokenizer.from_pretrained`)."""

from __future__ import annotations

import pathlib
from typing import Any

from acdc_compare.backends.gguf_reader import GGUFModelError, read_field

_TOKEN_TYPE_CONTROL = 3
_TOKEN_TYPE_USER_DEFINED = 4
_DIGIT_SPLITTING_PRE_TOKENIZERS = frozenset({"smollm", "starcoder", "refact", "codeshell"})
_PLAIN_BYTE_LEVEL_PRE_TOKENIZERS = frozenset({"gpt2", "default"})


def build_tokenizer(reader: Any, source: pathlib.Path, max_length: int) -> Any:
    """Rebuild the GGUF's GPT-2-style byte-level BPE tokenizer as a transformers fast tokenizer.

    BOS is never prepended automatically: prompts are tokenized exactly as given.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    model_kind = read_field(reader, "tokenizer.ggml.model", source)
    if model_kind != "gpt2":
        raise GGUFModelError(
            f"{source} uses a {model_kind!r} tokenizer; only GPT-2-style byte-level BPE ('gpt2') is supported"
        )
    tokens: list[str] = read_field(reader, "tokenizer.ggml.tokens", source)
    merges = [tuple(merge.split(" ", 1)) for merge in read_field(reader, "tokenizer.ggml.merges", source)]
    token_types: list[int] = read_field(reader, "tokenizer.ggml.token_type", source, [])
    vocab = {token: index for index, token in enumerate(tokens)}

    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    backend.pre_tokenizer = _pre_tokenizer(read_field(reader, "tokenizer.ggml.pre", source, "default"), source)
    backend.decoder = decoders.ByteLevel()
    added = [
        AddedToken(tokens[i], special=kind == _TOKEN_TYPE_CONTROL, normalized=False)
        for i, kind in enumerate(token_types)
        if kind in (_TOKEN_TYPE_CONTROL, _TOKEN_TYPE_USER_DEFINED)
    ]
    backend.add_tokens(added)

    def special(kind: str) -> str | None:
        index = read_field(reader, f"tokenizer.ggml.{kind}_token_id", source, None)
        return tokens[index] if index is not None and 0 <= index < len(tokens) else None

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=special("bos"),
        eos_token=special("eos"),
        unk_token=special("unknown"),
        pad_token=special("padding"),
        model_max_length=max_length,
        clean_up_tokenization_spaces=False,
    )
    chat_template = read_field(reader, "tokenizer.chat_template", source, None)
    if chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer


def _pre_tokenizer(pre: str, source: pathlib.Path) -> Any:
    """The `tokenizers` pre-tokenizer matching llama.cpp's named pre-tokenizer."""
    from tokenizers import pre_tokenizers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in _DIGIT_SPLITTING_PRE_TOKENIZERS:
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    if pre in _PLAIN_BYTE_LEVEL_PRE_TOKENIZERS:
        return byte_level
    raise GGUFModelError(
        f"{source} uses the {pre!r} pre-tokenizer; supported: "
        f"{', '.join(sorted(_DIGIT_SPLITTING_PRE_TOKENIZERS | _PLAIN_BYTE_LEVEL_PRE_TOKENIZERS))}"
    )
