"""README's Python examples run as written (issue 22, row 2): every ```python block of README.md is executed,
in order, in a fresh namespace and an empty folder. `load_model()` there gives a tiny random Llama with the
default model's tokenizer (`tiny_dir`): the real SmolLM2-135M takes minutes per discovery on a CPU. The first
example must use what the demo uses (`ExperimentConfig`) and find circuits that keep edges."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import acdc_compare
from acdc_compare.algorithms.hybrid import HybridOptions
from acdc_compare.experiment.config import ExperimentConfig

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(text: str) -> list[str]:
    """The code of every ```python fenced block, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_readme_has_the_python_examples_this_test_runs():
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 2 and "discover(" in blocks[0] and "task_from_prompts(" in blocks[1]


def test_the_first_example_uses_the_demo_s_settings():
    first = python_blocks(README.read_text(encoding="utf-8"))[0]
    demo = ExperimentConfig()
    ioi = first[first.index('discover("ioi"'):first.index("pet = ")]
    pet = first[first.index('discover("pet-last"'):].splitlines()[0]
    assert f'method="{demo.method}"' in first and f"functional={demo.functional}" in first
    assert 'threshold_scale="relative"' in first and first.count(f", {demo.threshold}, **settings") == 2
    assert f'corruption="{demo.corruption.value}"' in first
    assert f"k={demo.k_of('ioi')}" in ioi and f"tested={demo.tested_of('ioi')}" in ioi
    assert f'ranking="{demo.ranking_of("ioi")}"' in ioi and f"n_prompts={demo.prompts_of('ioi')}" in ioi
    assert f"rank_prompts={demo.n_prompts}" in ioi and HybridOptions.learn_steps == demo.learn_steps
    assert HybridOptions.learn_batch == demo.n_prompts
    assert f"k={demo.k_of('pet-last')}" in pet and f"tested={demo.tested_of('pet-last')}" in pet
    assert f"n_prompts={demo.prompts_of('pet-last')}" in pet and demo.ranking_of("pet-last") == "eap-ig"


def test_every_python_example_in_the_readme_runs(tiny_dir, tmp_path, monkeypatch):
    real_load = acdc_compare.load_model
    monkeypatch.setattr(acdc_compare, "load_model", lambda *args, **kwargs: real_load(str(tiny_dir)))
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    spaces: list[dict] = []
    for i, code in enumerate(blocks):
        namespace: dict = {"__name__": f"readme_example_{i}"}
        exec(compile(code, f"README.md python block {i}", "exec"), namespace)  # noqa: S102 - our own README
        spaces.append(namespace)
    first, second = spaces[0], spaces[1]
    assert first["ioi"].n_kept > 0 and first["pet"].n_kept > 0, "the README's example finds empty circuits"
    assert first["ioi"].settings["threshold_scale"] == "relative"
    assert first["pet"].settings["task"] == "pet-last" and first["pet"].settings.get("corruption") == "answers"
    assert second["circuit"].n_kept > 0
    assert {"ioi.json", "ioi_vs_pet.png", "pet.svg"} <= {p.name for p in tmp_path.iterdir()}


def test_the_small_sweep_s_time_estimate_agrees_with_the_readme_s_measurement():
    toml = (README.parent / "examples" / "sweep_small.toml").read_text()
    estimate = int(re.search(r"about (\d+) minutes", toml).group(1))
    text = " ".join(README.read_text().split())
    measured = int(re.search(r"`examples/sweep_small\.toml` \(.*?(\d+) min on 2 CPU cores", text).group(1))
    assert abs(estimate - measured) <= 0.25 * measured, (estimate, measured)


def test_readme_figures_exist_and_show_the_name_movers() -> None:
    """Issue 32: the README shows the demo's IOI figure with its four name movers filled as name movers, and
    the IOI vs pet-last side by side with arrows in each of its three classes (both, only IOI, only pet-last)."""
    from acdc_compare.draw import COMPARISON_COLORS, ROLE_COLORS
    from acdc_compare.types import Role

    root = Path(__file__).resolve().parent.parent
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (root / "README.md").read_text())
    assert "docs/figures/ioi.svg" in images and "docs/figures/compare_ioi_vs_pet-last.svg" in images
    assert all((root / image).is_file() for image in images)
    ioi = (root / "docs/figures/ioi.svg").read_text()
    for head in ("a23.h0", "a23.h1", "a23.h2", "a23.h7"):
        block = ioi.split(f"<title>{head}</title>")[1].split("</g>")[0]
        assert ROLE_COLORS[Role.NAME_MOVER] in block and "name mover" in block
    pair = (root / "docs/figures/compare_ioi_vs_pet-last.svg").read_text()
    for member in ("shared", "left", "right"):
        assert f'stroke="{COMPARISON_COLORS[member][0]}"' in pair
    for side in ("left", "right"):
        assert all(f"<title>{side}/{head}</title>" in pair for head in ("a23.h0", "a23.h1", "a23.h7"))


def test_the_readme_opens_with_the_study_s_table_generated_from_its_results() -> None:
    """Issue 33: the notes' table heads the README, exactly as `notes_markdown` writes it from the committed
    `benchmarks/results/study_cpu.json`, and before any other section."""
    import json

    from acdc_compare.experiment.study import notes_markdown

    root = Path(__file__).resolve().parent.parent
    text = (root / "README.md").read_text()
    table = notes_markdown(json.loads((root / "benchmarks/results/study_cpu.json").read_text()))
    assert table in text
    assert text.index(table) < text.index("\n## ")
