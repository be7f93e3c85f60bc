import math
import shutil

import pytest
import torch

from acdc_compare.backends import make_patcher
from acdc_compare.algorithms.acdc import AcdcError, acdc, reference_order
from acdc_compare.algorithms.problem import make_problem
from acdc_compare.circuit import Circuit
from acdc_compare.journal import JournalMismatchError
from acdc_compare.metrics import kl_divergence
from conftest import make_tiny, tiny_task
from acdc_compare.backends.hook_oracle import hook_patched_logits, oracle_acdc, oracle_order


def oracle_evaluate(model, graph, task):
    clean_logits = hook_patched_logits(model, graph, task.clean, torch.ones(graph.n_edges, dtype=torch.bool),
                                       corrupted=task.corrupted)[:, -1]

    def evaluate(kept):
        logits = hook_patched_logits(model, graph, task.clean, kept, corrupted=task.corrupted)[:, -1]
        return float(kl_divergence(clean_logits[:, None], logits[None, :, None])[0])

    return evaluate


def test_reference_order_is_the_named_order():
    model = make_tiny("llama")
    g = make_patcher(model).graph
    ours = [g.edge_names[e] for step in reference_order(g) for e in step.edges]
    theirs = [name for _, names in oracle_order(g) for name in names]
    assert ours == theirs
    assert sorted(ours) == sorted(g.edge_names)


@pytest.mark.parametrize("kind,threshold", [("gpt2", 0.002), ("gpt2", 0.02), ("llama", 0.005)])
def test_decisions_equal_the_one_edge_one_forward_oracle(kind, threshold):
    model = make_tiny(kind)
    patcher = make_patcher(model)
    task = tiny_task()
    problem = make_problem(patcher, task, metric="kl")
    found = acdc(problem, threshold, max_batch=8)
    kept, scores = oracle_acdc(oracle_evaluate(model, patcher.graph, task), patcher.graph, threshold)
    assert 0 < found.n_kept < patcher.graph.n_edges
    assert torch.equal(found.kept, kept), (found.n_kept, int(kept.sum()))
    tol = 1e-9 if kind == "gpt2" else 1e-5  # transformers' Llama RMSNorm runs in float32 even in float64
    for name, s in scores.items():
        assert abs(found.edge_score(name) - s) <= tol
    assert found.settings["n_tested"] == len(scores)
    # greedy bookkeeping: the last accepted metric is the circuit's metric
    assert math.isclose(found.metrics["circuit"], found.metrics["final_greedy"], rel_tol=1e-9, abs_tol=1e-12)


def test_batch_size_does_not_change_decisions():
    patcher = make_patcher(make_tiny("gpt2", seed=3))
    problem = make_problem(patcher, tiny_task(1), metric="logit_diff")
    a = acdc(problem, 0.01, max_batch=1)
    b = acdc(problem, 0.01, max_batch=32)
    assert torch.equal(a.kept, b.kept)
    assert torch.allclose(a.scores, b.scores, equal_nan=True, atol=1e-9)


def test_threshold_zero_and_huge():
    patcher = make_patcher(make_tiny("gpt2"))
    problem = make_problem(patcher, tiny_task())
    everything_goes = acdc(problem, 1e6)
    assert everything_goes.n_kept == 0
    strict = acdc(problem, 0.0)
    assert strict.n_kept > acdc(problem, 0.01).n_kept


def test_resume_from_any_cut_gives_the_identical_circuit(tmp_path):
    patcher = make_patcher(make_tiny("llama"))
    problem = make_problem(patcher, tiny_task())
    journal = tmp_path / "run.jsonl"
    whole = acdc(problem, 0.005, journal=journal)
    data = journal.read_bytes()
    assert data.count(b"\n") == patcher.graph.n_edges + 1
    for cut in (0, 40, len(data) // 3, len(data) // 2 + 7, len(data) - 5, len(data)):
        partial = tmp_path / f"cut{cut}.jsonl"
        partial.write_bytes(data[:cut])
        resumed = acdc(problem, 0.005, journal=partial)
        assert torch.equal(resumed.kept, whole.kept), cut
        assert torch.allclose(resumed.scores, whole.scores, equal_nan=True)
        assert _decisions(partial) == _decisions(journal)


def _decisions(path):
    import json

    lines = path.read_text().splitlines()[1:]
    return [(rec["e"], rec["k"]) for rec in map(json.loads, lines)]


def test_journal_of_another_run_is_refused(tmp_path):
    patcher = make_patcher(make_tiny("gpt2"))
    problem = make_problem(patcher, tiny_task())
    journal = tmp_path / "run.jsonl"
    acdc(problem, 0.01, journal=journal)
    with pytest.raises(JournalMismatchError, match="threshold"):
        acdc(problem, 0.02, journal=journal)
    other = make_problem(patcher, tiny_task(seed=5))
    with pytest.raises(JournalMismatchError, match="task_sha256"):
        acdc(other, 0.01, journal=journal)
    other_model = make_problem(make_patcher(make_tiny("llama")), tiny_task())
    with pytest.raises(JournalMismatchError, match="model"):
        acdc(other_model, 0.01, journal=journal)


def test_journal_of_other_weights_or_dtype_is_refused(tmp_path):
    """Same name, same graph, other weights (another seed) or another dtype: not the same run."""
    model = make_tiny("gpt2", seed=1)
    problem = make_problem(make_patcher(model), tiny_task())
    journal = tmp_path / "run.jsonl"
    acdc(problem, 0.01, journal=journal)
    retrained = make_tiny("gpt2", seed=2)
    retrained.cfg.model_name = model.cfg.model_name
    other = make_problem(make_patcher(retrained), tiny_task())
    assert other.fingerprint()["model"] == problem.fingerprint()["model"]
    assert other.graph.config.key == problem.graph.config.key
    with pytest.raises(JournalMismatchError, match="weights_sha256"):
        acdc(other, 0.01, journal=journal)
    single = make_problem(make_patcher(make_tiny("gpt2", dtype=torch.float32, seed=1)), tiny_task())
    with pytest.raises(JournalMismatchError, match="dtype: journal has 'float64', this run has 'float32'"):
        acdc(single, 0.01, journal=journal)
    assert make_problem(make_patcher(make_tiny("gpt2", seed=1)), tiny_task()).fingerprint() == problem.fingerprint()



def test_journal_of_weights_differing_in_one_element_is_refused(tmp_path):
    """Every weight byte counts: one MLP weight moved by 0.5 (not one a strided sample would read)."""
    problem = make_problem(make_patcher(make_tiny("gpt2", seed=1)), tiny_task())
    journal = tmp_path / "run.jsonl"
    acdc(problem, 0.01, journal=journal)
    nudged = make_tiny("gpt2", seed=1)
    with torch.no_grad():
        nudged.blocks[0].mlp.W_in[0, 1] += 0.5
    other = make_problem(make_patcher(nudged), tiny_task())
    assert other.fingerprint()["weights_sha256"] != problem.fingerprint()["weights_sha256"]
    with pytest.raises(JournalMismatchError, match="weights_sha256"):
        acdc(other, 0.01, journal=journal)

@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "abc"])
def test_bad_thresholds_are_refused_before_work(bad):
    patcher = make_patcher(make_tiny("gpt2"))
    problem = make_problem(patcher, tiny_task())
    with pytest.raises(ValueError, match="threshold"):
        acdc(problem, bad)


def test_nan_metric_stops_the_run_naming_the_edge():
    patcher = make_patcher(make_tiny("gpt2"))
    problem = make_problem(patcher, tiny_task())
    calls = {"n": 0}
    original = problem.metric

    def flaky(logits):
        calls["n"] += 1
        out = original(logits)
        return out if calls["n"] < 4 else out * float("nan")

    broken = type(problem)(**{**problem.__dict__, "metric": flaky})
    with pytest.raises(AcdcError, match=r"metric became nan when removing edge '.+->logits'"):
        acdc(broken, 0.01)
