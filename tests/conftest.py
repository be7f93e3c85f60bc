import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from acdc_compare.backends import tiny_model  # noqa: E402
from acdc_compare.tasks.base import Task  # noqa: E402

TINY = {
    "gpt2": dict(arch="gpt2", n_layers=3, n_heads=4, d_model=32),
    "llama": dict(arch="llama", n_layers=3, n_heads=6, n_kv_heads=2, d_model=48),
    "neox": dict(arch="neox", n_layers=2, n_heads=4, d_model=32),
    **{arch: dict(arch=arch, n_layers=2, n_heads=4, n_kv_heads=2, d_model=32)
       for arch in ("qwen3", "gemma", "gemma2", "gemma3", "phi3", "olmo2")},
}


def make_tiny(kind: str, dtype=torch.float64, seed: int = 1):
    return tiny_model(dtype=dtype, seed=seed, **TINY[kind])


@pytest.fixture(scope="session", params=["gpt2", "llama", "neox"])
def tiny(request):
    return make_tiny(request.param)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A tiny random Llama saved as a local Hugging Face directory, with the default model's tokenizer (so
    the registered tasks build): what the CLI tests pass as --model."""
    return make_tiny_hf_dir(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_gpt2():
    return make_tiny("gpt2")


@pytest.fixture(scope="session")
def tiny_llama():
    return make_tiny("llama")


def make_tiny_hf_dir(path, n_layers: int = 2, n_heads: int = 4, n_kv_heads: int = 2, d_model: int = 32,
                     seed: int = 0):
    """A tiny random Llama saved as a local Hugging Face directory with the default model's tokenizer, so the
    registered tasks build and `load_model(str(path))` loads it (in any process: CLI runs, sweep workers)."""
    import transformers

    from acdc_compare.backends.gguf import convert_gguf

    tok = transformers.AutoTokenizer.from_pretrained(convert_gguf())
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(num_hidden_layers=n_layers, num_attention_heads=n_heads,
                                   num_key_value_heads=n_kv_heads, hidden_size=d_model, intermediate_size=2 * d_model,
                                   vocab_size=len(tok), max_position_embeddings=128, initializer_range=0.3,
                                   tie_word_embeddings=False)
    transformers.LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/NAME.py imported as module NAME (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


def random_tokens(n: int, p: int, vocab: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (n, p), generator=g)


def tiny_task(seed: int = 0, n: int = 6, p: int = 7) -> Task:
    """Random prompts whose tokens 1-3 are corrupted, scored at the last position (for tiny models)."""
    clean = random_tokens(n, p, seed=seed)
    corrupted = clean.clone()
    corrupted[:, 1:4] = random_tokens(n, 3, seed=seed + 100)
    return Task("tiny", clean, corrupted, positions=torch.full((n,), p - 1),
                correct=clean[:, 2], wrong=clean[:, 0])


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a model loads: the mistake must be refused before that."""
    import acdc_compare.api as api

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad input was refused")

    monkeypatch.setattr(api, "load_model", refuse)
    monkeypatch.setattr(api, "_loaded", {})
