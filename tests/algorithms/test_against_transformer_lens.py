"""An external exact check: TransformerLens 4.3's own head-to-head path patching
(`transformer_lens.patching.get_act_patch_direct_path_all_sources`, formerly
`transformer_lens.tools.analysis.direct_path_patching`) and edge attribution patching
(`transformer_lens.tools.analysis.attribution_patching.attribution_patch`, granularity "edge", MHA only) agree
with this tool's patching engine and EAP scores on tiny random float64 MHA models (GPT-2, and a Llama with as
many key-value heads as query heads).

Conventions, and how the two sides are put on the same footing:

- Metric: M = the negated logit difference (correct - wrong) at the scored position, mean over prompts: this
  tool's `metric="logit_diff"` (which ACDC minimises). TL gets the same function of its logits.
- Direction. This tool runs the CLEAN prompts and removes an edge by giving its receiver the sender's output
  on the CORRUPTED prompts (ablation "corrupted"). TL's direct path patching runs the corrupted prompts and
  restores one edge to its clean value ("denoising"), and its attribution patching also points from corrupt
  toward clean. So TL is called with the roles swapped: TL's `clean` is this tool's corrupted prompts and TL's
  `corrupt` is this tool's clean prompts. Then TL's patched metric for head A -> head B's q/k/v input is
  exactly this tool's M(full circuit without that edge).
- Linearisation point and sign. TL takes the gradient on its corrupt run, this tool (EAP) on its clean run:
  with the swap both take it on this tool's clean run, the same point. This tool's signed EAP score is
  s_e = -dM/dmask_e at the full circuit = (a_corrupted - a_clean) . dM/d(receiver input), the first-order
  change of M when the edge is removed; TL's edge score (a_TLclean - a_TLcorrupt) . dM/d(reader input) on
  its corrupt run is the same number. TL scores each position's edge separately: this tool's edge is the
  sum over positions. TL averages per-example scores over the batch; this tool's M is the mean over prompts,
  so its gradient is the same average (TL is called one example at a time, each with its own answer tokens).
- Edges: TL's writers (embed, each head's `hook_result`, each `hook_mlp_out`) and readers (each head's split
  q/k/v input, `hook_mlp_in`, the final `hook_resid_post`) are this tool's residual edges one for one
  (`input`, `a{L}.h{H}`, `m{L}` -> `a{L}.h{H}<q|k|v>`, `m{L}`, `logits`). This tool's direct edges have no TL
  counterpart and are left out; every residual edge must have one, and TL must have no other.

TL's path-patching results are float32 (its result tensor), so those agree to float32 rounding; EAP agrees to
float64 rounding.
"""

from __future__ import annotations

import warnings
from collections import defaultdict

import pytest
import torch
from conftest import tiny_task

from acdc_compare.algorithms.eap import eap_scores, evaluate_many
from acdc_compare.algorithms.problem import Problem, make_problem
from acdc_compare.backends import make_patcher, tiny_model

tl_patching = pytest.importorskip("transformer_lens.patching")
tl_attr = pytest.importorskip("transformer_lens.tools.analysis.attribution_patching")

MODELS = {"gpt2": dict(arch="gpt2", n_layers=2, n_heads=4, d_model=32),
          "llama-mha": dict(arch="llama", n_layers=2, n_heads=4, n_kv_heads=4, d_model=32)}
# How close TL's own forward comes to this tool's float64 engine: exact for GPT-2; the Llama bridge runs the
# transformers module, whose rotary tables are computed in float32 (relative error ~1e-7 in the logits)
FORWARD_TOL = {"gpt2": 1e-10, "llama-mha": 1e-5}


def _setup(kind: str) -> tuple[object, Problem]:
    """(a TL bridge whose parameters take gradients, this tool's problem on an identical model)."""
    task = tiny_task(n=3)
    ours = tiny_model(dtype=torch.float64, seed=1, **MODELS[kind])
    problem = make_problem(make_patcher(ours), task, metric="logit_diff")
    theirs = tiny_model(dtype=torch.float64, seed=1, **MODELS[kind])
    for p in theirs.parameters():  # TL's attribution differentiates through the model; the loader froze it
        p.requires_grad_(True)
    return theirs, problem


def _metric(problem: Problem, rows: slice = slice(None)):
    """M on TL's logits [batch, pos, vocab]: the negated logit difference, mean over the prompts in `rows`."""
    t = problem.task
    pos, good, bad = (x[rows, 0] for x in (t.positions, t.correct, t.wrong))

    def m(logits: torch.Tensor) -> torch.Tensor:
        i = torch.arange(logits.shape[0])
        return -(logits[i, pos, good] - logits[i, pos, bad]).mean()

    return m


@pytest.mark.parametrize("kind", list(MODELS))
def test_head_to_head_path_patching_equals_the_engines_edge_removal(kind: str) -> None:
    model, problem = _setup(kind)
    task, graph = problem.task, problem.graph
    metric = _metric(problem)
    full = evaluate_many(problem, torch.ones(1, graph.n_edges, dtype=torch.bool))[0]
    with torch.no_grad():
        assert float(metric(model(task.clean))) == pytest.approx(float(full), abs=FORWARD_TOL[kind])
        _, tl_clean = model.run_with_cache(task.corrupted)  # roles swapped: see the module docstring
        _, tl_corrupt = model.run_with_cache(task.clean)
    n_layers, n_heads = graph.n_layers, graph.n_heads
    pairs = [(sl, sh, dl, dh) for sl in range(n_layers) for sh in range(n_heads)
             for dl in range(sl + 1, n_layers) for dh in range(n_heads)]
    for kv in "qkv":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            theirs = tl_patching.get_act_patch_direct_path_all_sources(
                model, task.clean, tl_clean, tl_corrupt, metric, component=kv, verbose=False)
        kept = torch.ones(len(pairs), graph.n_edges, dtype=torch.bool)
        for row, (sl, sh, dl, dh) in enumerate(pairs):
            kept[row, graph.edge_index(f"a{sl}.h{sh}->a{dl}.h{dh}<{kv}>")] = False
        ours = evaluate_many(problem, kept)
        expected = torch.tensor([float(theirs[p]) for p in pairs], dtype=torch.float64)
        assert (ours - full).abs().max() > 1e-3  # the edges matter: the check is not of zeros
        tol = max(1e-6, FORWARD_TOL[kind])  # TL's result tensor is float32
        torch.testing.assert_close(ours, expected, rtol=tol, atol=tol)


def _tl_name(node) -> str:
    layer, head = node.layer, node.head
    return {"embed": "input", "attn_head_out": f"a{layer}.h{head}", "mlp_out": f"m{layer}",
            "q_input": f"a{layer}.h{head}<q>", "k_input": f"a{layer}.h{head}<k>",
            "v_input": f"a{layer}.h{head}<v>", "mlp_in": f"m{layer}", "logits": "logits"}[node.kind]


def _tl_edge_scores(model, problem: Problem, swap: bool) -> dict[str, float]:
    """TL's edge attribution, summed over positions and averaged over prompts, with TL's clean = this tool's
    corrupted prompts (swap) or TL's clean = this tool's clean prompts (TL's own roles)."""
    task = problem.task
    n = task.n_prompts
    out: dict[str, float] = defaultdict(float)
    config = tl_attr.EdgeAttributionConfig(granularity="edge")
    for i in range(n):  # one example per call, so each gets its own answer tokens in the metric
        rows = slice(i, i + 1)
        tl_clean, tl_corrupt = (task.corrupted[rows], task.clean[rows]) if swap else (task.clean[rows],
                                                                                       task.corrupted[rows])
        result = tl_attr.attribution_patch(model, tl_clean, tl_corrupt, _metric(problem, rows), config)
        for (writer, reader), score in result.edge_scores.items():
            out[f"{_tl_name(writer)}->{_tl_name(reader)}"] += score / n
    return out


@pytest.mark.parametrize("kind", list(MODELS))
def test_eap_equals_transformer_lens_edge_attribution_at_the_same_point(kind: str) -> None:
    model, problem = _setup(kind)
    graph = problem.graph
    residual = [e for e in range(graph.n_edges) if not graph.is_direct(e)]
    names = [graph.edge_names[e] for e in residual]
    theirs = _tl_edge_scores(model, problem, swap=True)
    assert set(theirs) == set(names)  # one TL edge per residual edge, and no other
    ours = eap_scores(problem, absolute=False)[residual]
    expected = torch.tensor([theirs[name] for name in names], dtype=torch.float64)
    assert expected.abs().max() > 1e-2
    torch.testing.assert_close(ours, expected, rtol=FORWARD_TOL[kind], atol=FORWARD_TOL[kind] / 100)
    # TL's own roles linearise at the other run (this tool's corrupted one): the same first-order quantity
    # with the opposite sign, but measurably different numbers, so the swap above is what makes them equal
    other = _tl_edge_scores(model, problem, swap=False)
    other_point = -torch.tensor([other[name] for name in names], dtype=torch.float64)
    assert (other_point - ours).abs().max() > 1e-3
