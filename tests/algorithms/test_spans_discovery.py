"""Discovery over span edges: EAP / EAP-IG per (edge, span) from the same passes, summing over spans to the
span-free scores; exact ACDC and the hybrid on a span graph against the one-edge-one-forward oracle."""

import pytest
import torch

from acdc_compare.algorithms.acdc import acdc, reference_order
from acdc_compare.algorithms.eap import eap_ig_scores, eap_scores
from acdc_compare.algorithms.hybrid import hybrid
from acdc_compare.algorithms.problem import make_problem, span_patcher
from acdc_compare.backends import make_patcher
from acdc_compare.backends.hook_oracle import hook_patched_logits, oracle_acdc, oracle_order
from acdc_compare.metrics import kl_divergence
from acdc_compare.span_circuits import collapse_spans, kept_per_span, kept_spans, task_span_graph
from acdc_compare.spans import PromptSpans
from conftest import make_tiny, tiny_task

SPANS = ("first", "corrupted", "rest", "END")


def span_task(n: int = 6, p: int = 7):
    """`tiny_task` (tokens 1-3 corrupted, scored at the last position) with spans: token 0, tokens 1-3, the
    rest, the last token."""
    task = tiny_task(n=n, p=p)
    row = torch.tensor([0, 1, 1, 1] + [2] * (p - 5) + [3])
    import dataclasses
    return dataclasses.replace(task, spans=PromptSpans(SPANS, row.expand(n, p).clone()))


def problems(kind: str, metric: str):
    patcher = make_patcher(make_tiny(kind))
    task = span_task()
    return (make_problem(patcher, task, metric=metric),
            make_problem(span_patcher(patcher, task, "spans"), task, metric=metric))


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_eap_scores_per_span_sum_to_the_span_free_scores(kind):
    plain, spans = problems(kind, "logit_diff")
    g = spans.graph
    assert g.spans == SPANS and g.n_edges == g.n_base_edges * len(SPANS)
    per_span = eap_scores(spans, absolute=False).view(g.n_base_edges, len(SPANS))
    whole = eap_scores(plain, absolute=False)
    assert torch.allclose(per_span.sum(1), whole, atol=1e-9, rtol=1e-7)
    # token 0 is the same in clean and corrupted prompts (causal: every sender's delta is 0 there)
    assert per_span[:, SPANS.index("first")].abs().max() <= 1e-12
    assert per_span[:, SPANS.index("corrupted")].abs().max() > 1e-6
    assert per_span[:, SPANS.index("END")].abs().max() > 1e-6


def test_eap_ig_scores_per_span_sum_to_the_span_free_scores():
    plain, spans = problems("gpt2", "kl")
    g = spans.graph
    per_span = eap_ig_scores(spans, steps=3, absolute=False).view(g.n_base_edges, len(SPANS))
    whole = eap_ig_scores(plain, steps=3, absolute=False)
    assert torch.allclose(per_span.sum(1), whole, atol=1e-9, rtol=1e-7)


def test_eap_per_span_is_the_finite_difference_of_the_span_edge():
    _, spans = problems("gpt2", "logit_diff")
    g, h = spans.graph, 1e-4
    signed = eap_scores(spans, absolute=False)
    for name in ("a0.h1->a2.h0<k>@corrupted", "input->m0@corrupted", "m2->logits@END", "a1.h0<q>@END",
                 "a0.h2->a1.h3<v>@rest"):
        e = g.edge_index(name)
        assert abs(float(signed[e])) > 1e-6, f"{name} has no effect to check"
        up = torch.ones(2, g.n_edges, dtype=torch.float64)
        up[0, e], up[1, e] = 1 + h, 1 - h
        metric = spans.metric(spans.patcher.run(spans.ctx, up)[0])
        assert float(-(metric[0] - metric[1]) / (2 * h)) == pytest.approx(float(signed[e]), abs=1e-6)


def test_acdc_on_a_span_graph_equals_the_one_edge_one_forward_oracle():
    model = make_tiny("gpt2")
    plain, spans = problems("gpt2", "kl")
    g, task, threshold = spans.graph, spans.task, 0.002
    index = task.spans.index
    clean_logits = hook_patched_logits(model, g, task.clean, torch.ones(g.n_edges, dtype=torch.bool),
                                       corrupted=task.corrupted, spans=index)[:, -1]

    def evaluate(kept):
        logits = hook_patched_logits(model, g, task.clean, kept, corrupted=task.corrupted, spans=index)[:, -1]
        return float(kl_divergence(clean_logits[:, None], logits[None, :, None])[0])

    assert [g.edge_names[e] for s in reference_order(g) for e in s.edges] == \
        [n for _, names in oracle_order(g) for n in names]
    found = acdc(spans, threshold, max_batch=8)
    kept, scores = oracle_acdc(evaluate, g, threshold)
    assert 0 < found.n_kept < g.n_edges
    assert torch.equal(found.kept, kept), (found.n_kept, int(kept.sum()))
    for name, s in scores.items():
        assert abs(found.edge_score(name) - s) <= 1e-9
    counts = kept_per_span(found)
    assert sum(counts.values()) == found.n_kept and set(counts) == set(SPANS)
    assert len(set(counts.values())) > 1, "every span kept the same number of edges"
    by_edge = kept_spans(found)
    assert sum(len(v) for v in by_edge.values()) == found.n_kept


def test_hybrid_with_every_edge_is_exact_acdc_on_a_span_graph():
    _, spans = problems("gpt2", "kl")
    exact = acdc(spans, 0.002)
    found = hybrid(spans, 0.002, k=None)
    assert torch.equal(found.kept, exact.kept)


def test_collapse_and_task_span_graph():
    plain, spans = problems("gpt2", "logit_diff")
    assert task_span_graph(plain.graph, spans.task) == spans.graph
    signed = eap_scores(spans, absolute=False)
    from acdc_compare.circuit import Circuit
    c = Circuit.from_scores(spans.graph, signed, top_n=30)
    flat = collapse_spans(c)
    assert flat.graph == plain.graph
    assert torch.equal(flat.kept, c.kept.view(-1, len(SPANS)).any(1))
    assert torch.allclose(flat.scores, eap_scores(plain, absolute=False), atol=1e-9)


def test_a_span_run_s_journal_is_refused_by_a_span_free_run(tmp_path):
    from acdc_compare.journal import JournalMismatchError

    plain, spans = problems("gpt2", "kl")
    journal = tmp_path / "j.jsonl"
    partial = acdc(spans, 0.002, journal=journal, max_tests=5)
    assert partial.settings["n_tested"] == 5
    with pytest.raises(JournalMismatchError, match="spans"):
        acdc(plain, 0.002, journal=journal)
    assert torch.equal(acdc(spans, 0.002, journal=journal).kept, acdc(spans, 0.002).kept)
