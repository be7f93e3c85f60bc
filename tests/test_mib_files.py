"""MIB leaderboard submissions and MIB files wherever a circuit file is read: a circuit discovered here (EAP on
tiny MHA and GQA models) written as a submission and read back keeps its residual edges and scores; the 9
binary circuits have the right MIB edge counts; folders MIB would misread are refused; `compare` and `curve`
take a MIB file (JSON or .pt, found by content) of another tool's circuit next to a native one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import make_tiny, tiny_task

from acdc_compare.algorithms.problem import make_problem
from acdc_compare.api import run_method
from acdc_compare.backends import make_patcher, model_config
from acdc_compare.circuit import Circuit, random_circuit
from acdc_compare.cli import EXIT_OK, EXIT_USAGE, main
from acdc_compare.compare import compare_circuits
from acdc_compare.export import save_circuit
from acdc_compare.graph import Graph
from acdc_compare.mib import save_mib
from acdc_compare.mib import mib_scores
from acdc_compare.mib_files import (MIB_PERCENTAGES, binary_circuits, binary_file_name, is_mib_file,
                                    load_any_circuit, n_mib_edges, read_submission, write_submission)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def found(request) -> Circuit:
    """An EAP circuit (top 40 edges, logit difference) on a tiny GPT-2 (MHA) or Llama (6 heads, 2 kv heads)."""
    problem = make_problem(make_patcher(make_tiny(request.param)), tiny_task(), metric="logit_diff")
    return run_method(problem, "eap", top_n=40)


def _resid(c: Circuit) -> torch.Tensor:
    return c.graph.edge_sender_tensor >= 0


@pytest.mark.parametrize("fmt", ["json", "pt"])
def test_importances_submission_round_trips(found: Circuit, tmp_path: Path, fmt: str) -> None:
    report = write_submission(found, tmp_path, "acdc-compare", "ioi_mini", "tiny", d_model=48, fmt=fmt)
    folder = tmp_path / "acdc-compare" / "ioi-mini_tiny"
    assert report.folder == folder and report.paths == (folder / f"importances.{fmt}",)
    assert report.kept_per_file[f"importances.{fmt}"] == sum(
        1 for e in found.kept.nonzero().flatten().tolist() for _ in range(_weight(found.graph, e)))
    sub = read_submission(folder, found.graph, d_model=48)
    assert sub.importances is not None and not sub.circuits and not sub.ignored
    resid = _resid(found)
    assert torch.equal(sub.importances.kept[resid], found.kept[resid])
    ranks = mib_scores(found)
    assert torch.equal(sub.importances.scores[resid], ranks[resid])  # the circuit's ranking, as scores
    in_circuit = found.kept & resid
    assert float(ranks[in_circuit].min()) > float(ranks[resid & ~found.kept].max())
    assert all(r.complete for r in sub.reports.values())


def _weight(graph: Graph, e: int) -> int:
    from acdc_compare.mib import mib_edge_names

    return len(mib_edge_names(graph, e))


def test_binary_circuits_have_the_right_edge_counts(found: Circuit, tmp_path: Path) -> None:
    graph = found.graph
    total = n_mib_edges(graph)
    group = graph.group_size if graph.grouped else 1
    report = write_submission(found, tmp_path, "m", "ioi", "tiny", binary=True)
    folder = tmp_path / "m" / "ioi_tiny"
    assert sorted(p.name for p in folder.iterdir()) == sorted(binary_file_name(p) for p in MIB_PERCENTAGES)
    n_scored = sum(_weight(graph, e) for e in range(graph.n_edges) if not math.isnan(float(found.rank_scores()[e])))
    previous: set[str] = set()
    for p in MIB_PERCENTAGES:
        d = json.loads((folder / binary_file_name(p)).read_text())
        assert len(d["edges"]) == total
        kept = {name for name, info in d["edges"].items() if info["in_graph"]}
        limit = math.floor(p / 100 * total)
        assert len(kept) == report.kept_per_file[binary_file_name(p)] <= limit
        assert len(kept) > min(limit, n_scored) - group  # only a GQA group that does not fit may stop it short
        assert previous <= kept  # one ranking: each circuit holds the smaller ones
        if kept - previous:
            worst_in = min(abs(d["edges"][n]["score"]) for n in kept)
            best_out = max(abs(d["edges"][n]["score"]) for n in d["edges"] if n not in kept)
            assert worst_in >= best_out or len(kept) > limit - group
        previous = kept
    assert max(report.kept_per_file.values()) > 0
    sub = read_submission(folder, graph)
    assert sub.importances is None and list(sub.circuits) == list(MIB_PERCENTAGES)
    expected = binary_circuits(found)
    for p, circuit in sub.circuits.items():
        assert torch.equal(circuit.kept[_resid(found)], expected[p].kept[_resid(found)])


def test_folders_mib_would_misread_are_refused(tmp_path: Path) -> None:
    graph = Graph.from_model_config(model_config(make_tiny("gpt2")))
    c = random_circuit(graph, n_nodes=5, seed=0)
    write_submission(c, tmp_path, "m", "t", "x")
    with pytest.raises(ValueError, match="already holds MIB circuit files"):
        write_submission(c, tmp_path, "m", "t", "x", binary=True)
    save_mib(c, tmp_path / "m" / "t_x" / binary_file_name(1.0))
    with pytest.raises(ValueError, match="not both"):
        read_submission(tmp_path / "m" / "t_x", graph)
    (tmp_path / "m" / "t_x" / binary_file_name(1.0)).unlink()
    save_mib(c, tmp_path / "m" / "t_x" / "importances.pt")
    with pytest.raises(ValueError, match="two importances files"):
        read_submission(tmp_path / "m" / "t_x", graph)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not neither"):
        read_submission(tmp_path / "empty", graph)
    with pytest.raises(ValueError, match="model 'a/b'"):
        write_submission(c, tmp_path, "m", "t", "a/b")
    with pytest.raises(ValueError, match=r"\(0, 100\]"):
        binary_circuits(c, (0.0, 1.0))


def test_files_are_told_apart_by_content(tmp_path: Path) -> None:
    graph = Graph.from_model_config(model_config(make_tiny("llama")))
    c = random_circuit(graph, n_nodes=6, seed=3)
    save_circuit(c, tmp_path / "native.json")
    save_mib(c, tmp_path / "mib.json")
    save_mib(c, tmp_path / "mib.pt")
    (tmp_path / "mib.pt").rename(tmp_path / "renamed.bin")
    assert not is_mib_file(tmp_path / "native.json")
    assert is_mib_file(tmp_path / "mib.json") and is_mib_file(tmp_path / "renamed.bin")
    native, none = load_any_circuit(tmp_path / "native.json")
    assert none is None and torch.equal(native.kept, c.kept)
    for name in ("mib.json", "renamed.bin"):
        back, report = load_any_circuit(tmp_path / name, graph)
        assert report is not None and report.complete and torch.equal(back.kept, c.kept)
    with pytest.raises(ValueError, match="names no model"):
        load_any_circuit(tmp_path / "mib.json")


def test_cli_writes_and_reads_a_submission(tiny_dir, tmp_path: Path, capsys) -> None:
    graph = Graph.from_model_config(model_config(make_tiny_from_dir(tiny_dir)))
    c = random_circuit(graph, n_nodes=5, seed=2)
    save_circuit(c, tmp_path / "native.json")
    args = ["convert", str(tmp_path / "native.json"), str(tmp_path / "sub"), "--to", "mib-submission",
            "--model", str(tiny_dir), "--method", "mine", "--task", "ioi"]
    assert main(args) == EXIT_OK
    folder = tmp_path / "sub" / "mine" / f"ioi_{Path(tiny_dir).name}"
    assert (folder / "importances.json").is_file() and "wrote 1 files" in capsys.readouterr().out
    assert main(["convert", str(folder), str(tmp_path / "back.json"), "--to", "native",
                 "--model", str(tiny_dir)]) == EXIT_OK
    back, _ = load_any_circuit(tmp_path / "back.json")
    assert torch.equal(back.kept, c.kept)
    assert main([*args[:2], str(tmp_path / "sub2"), *args[3:], "--binary", "--mib-model", "llama3"]) == EXIT_OK
    assert len(list((tmp_path / "sub2" / "mine" / "ioi_llama3").iterdir())) == 9
    assert main(args[:-2]) == EXIT_USAGE
    assert "--task" in capsys.readouterr().err


def make_tiny_from_dir(path: Path):
    from acdc_compare.backends import load_model

    return load_model(str(path), device="cpu")


def test_cli_compare_takes_another_tools_mib_file(tiny_dir, tmp_path: Path, capsys) -> None:
    graph = Graph.from_model_config(model_config(make_tiny_from_dir(tiny_dir)))
    ours, theirs = random_circuit(graph, n_nodes=5, seed=4), random_circuit(graph, n_nodes=5, seed=5)
    save_circuit(ours, tmp_path / "ours.json")
    save_mib(theirs, tmp_path / "theirs.pt", d_model=32)  # "another tool's" circuit, EAP-IG's .pt format
    imported, _ = load_any_circuit(tmp_path / "theirs.pt", graph)
    expected = compare_circuits(ours, imported)
    out = tmp_path / "cmp"
    for extra in ([], ["--model", str(tiny_dir)]):
        assert main(["compare", str(tmp_path / "ours.json"), str(tmp_path / "theirs.pt"), "--out", str(out),
                     *extra]) == EXIT_OK
        text = capsys.readouterr().out
        assert "MIB circuit file read onto" in text
        assert f"both {len(expected.edges.both)}" in text and f"only-right {len(expected.edges.only_b)}" in text
        assert f"Jaccard {expected.heads.jaccard:.3f}" in text
    save_mib(ours, tmp_path / "ours_mib.json", d_model=32)
    assert main(["compare", str(tmp_path / "ours_mib.json"), str(tmp_path / "theirs.pt"), "--out", str(out),
                 "--model", str(tiny_dir)]) == EXIT_OK
    assert f"both {len(expected.edges.both)}" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "ours_mib.json"), str(tmp_path / "theirs.pt"),
                 "--out", str(out)]) == EXIT_USAGE
    assert "--model" in capsys.readouterr().err


def test_cli_curve_scores_a_mib_file(tiny_dir, tmp_path: Path, capsys) -> None:
    graph = Graph.from_model_config(model_config(make_tiny_from_dir(tiny_dir)))
    scores = torch.linspace(1.0, 2.0, graph.n_edges, dtype=torch.float64)
    save_mib(Circuit.from_scores(graph, scores, top_n=10), tmp_path / "theirs.json", d_model=32)
    out = tmp_path / "curve"
    assert main(["curve", "--model", str(tiny_dir), "--task", "ioi", "--n-prompts", "2", "--scores",
                 str(tmp_path / "theirs.json"), "--fractions", "0.1", "1.0", "--quiet", "--out", str(out)]) == EXIT_OK
    assert "MIB circuit file" in capsys.readouterr().out
    curve = json.loads((out / "ioi_curve.json").read_text())["curves"][str(tmp_path / "theirs.json")]
    assert curve["sizes"][-1] == graph.n_edges and curve["faithfulness"][-1] == pytest.approx(1.0)


def test_a_hybrid_submission_ranks_its_kept_edges_first(tmp_path: Path) -> None:
    """The binary circuits are prefixes of the circuit's ranking: the smallest within the kept edges, the
    largest holding them all (a hybrid scored only ACDC's tested edges once, so all nine held those)."""
    problem = make_problem(make_patcher(make_tiny("llama")), tiny_task(), metric="kl")
    found = run_method(problem, "hybrid", 1e-9, k=60, tested=8, abs_value=True)  # ACDC keeps some
    assert found.kept_score_kinds().keys() >= {"acdc", "eap-ig"}
    circuits = binary_circuits(found)
    resid = _resid(found)
    kept = found.kept & resid
    sizes = [int((c.kept & resid).sum()) for c in circuits.values()]
    assert sizes == sorted(sizes) and 0 < min(s for s in sizes if s) < int(kept.sum())
    smallest = next(c for c in circuits.values() if (c.kept & resid).any())
    largest = circuits[max(circuits)]
    assert not bool((smallest.kept & resid & ~found.kept).any())
    assert bool((largest.kept[kept]).all())
    report = write_submission(found, tmp_path, "m", "ioi", "tiny", binary=True)
    assert any("ranking" in line and "eap-ig" in line for line in report.lines())
