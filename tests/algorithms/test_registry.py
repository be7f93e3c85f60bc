"""The algorithm interface: options validate themselves, one registry feeds discover, run_method and the CLI,
and greedy ACDC runs on any evaluator (here a fake whose decisions are known)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from acdc_compare.algorithms.acdc import AcdcOptions, acdc, reference_order
from acdc_compare.algorithms.base import AlgorithmSpec, option
from acdc_compare.algorithms.eap import EapIgOptions, EapOptions
from acdc_compare.algorithms.hybrid import HybridOptions
from acdc_compare.algorithms.registry import ALGORITHMS, algorithm, make_options, spec_of
from acdc_compare.api import method_options
from acdc_compare.backends.hook_oracle import oracle_acdc
from acdc_compare.cli import build_parser
from acdc_compare.graph import Graph, GraphConfig


class FakeEvaluator:
    """Metric = sum of a fixed cost over the removed edges: removing edge e changes it by cost[e] exactly,
    whatever else is removed, so greedy ACDC's decisions are known in advance."""

    def __init__(self, graph: Graph, cost: torch.Tensor) -> None:
        self.graph, self.cost = graph, cost.double()
        self.n_stages, self.default_batch = 2 * graph.n_layers + 1, 4
        self.calls = 0

    def stage(self, receiver: int) -> int:
        rec = self.graph.receivers[receiver]
        return 2 * rec.layer + int(rec.kind.value == "mlp") if rec.kind.value != "logits" else self.n_stages - 1

    def evaluate(self, kept: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return ((~kept.bool()).double() * self.cost).sum(-1)

    @property
    def metric_ends(self) -> tuple[float, float]:
        return 0.0, float(self.cost.sum())

    def checkpoint(self, kept: torch.Tensor) -> str:
        return "checkpoint"

    def evaluate_and_checkpoint(self, kept: torch.Tensor) -> tuple[float, str]:
        return float(self.evaluate(kept[None])[0]), self.checkpoint(kept)

    def evaluate_from(self, checkpoint: str, stage: int, kept: torch.Tensor) -> torch.Tensor:
        assert checkpoint == "checkpoint"
        return self.evaluate(kept)

    def fingerprint(self) -> dict:
        return {"model": "fake", "graph": self.graph.config.key}

    def run_settings(self) -> dict:
        return {"device": "none"}


@pytest.mark.parametrize("direct", [True, False])
def test_acdc_on_a_fake_evaluator_makes_the_known_decisions(direct):
    graph = Graph(GraphConfig(n_layers=2, n_heads=2, n_kv_heads=2, include_direct=direct))
    cost = torch.where(torch.rand(graph.n_edges, generator=torch.Generator().manual_seed(0)) < 0.3, 1.0, -0.1)
    fake = FakeEvaluator(graph, cost)
    found = acdc(fake, 0.5, max_batch=4)
    expected, scores = oracle_acdc(lambda kept: float(fake.evaluate(kept[None])[0]), graph, 0.5)
    assert torch.equal(found.kept, expected)
    for name, score in scores.items():
        assert found.edge_score(name) == pytest.approx(score)
    assert found.metrics["circuit"] == pytest.approx(float(((~found.kept).double() * cost).sum()))
    assert 0 < found.n_kept < graph.n_edges


def test_acdc_on_a_fake_evaluator_keeps_all_or_nothing():
    graph = Graph(GraphConfig(n_layers=2, n_heads=2, n_kv_heads=1))
    everything = acdc(FakeEvaluator(graph, torch.ones(graph.n_edges)), 0.5)
    assert everything.n_kept == graph.n_edges and bool((everything.scores == 1.0).all())
    nothing = acdc(FakeEvaluator(graph, torch.full((graph.n_edges,), -0.1)), 0.5)
    assert nothing.n_kept == 0
    n_logit_edges = graph.receivers[graph.logits_receiver].n_upstream
    assert int((~torch.isnan(nothing.scores)).sum()) == n_logit_edges  # everything behind them is dead, untested


def test_options_validate_when_made():
    with pytest.raises(ValueError, match="finite number >= 0"):
        AcdcOptions(threshold=-1)
    with pytest.raises(ValueError, match="needs a threshold"):
        AcdcOptions()
    with pytest.raises(ValueError, match="exactly one of top_n or threshold"):
        EapOptions(top_n=3, threshold=0.1)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        EapIgOptions(top_n=3, steps=0)
    with pytest.raises(ValueError, match="k or coverage, not both"):
        HybridOptions(threshold=0.1, k=5, coverage=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        AcdcOptions(threshold=0.1).threshold = 0.2  # type: ignore[misc]


def test_registry_names_options_and_refuses_unknown_ones():
    assert list(ALGORITHMS) == ["acdc", "eap", "eap-ig", "hybrid"]
    assert isinstance(make_options("hybrid", 0.1, k=5), HybridOptions)
    assert spec_of(EapOptions(top_n=1)) is algorithm("eap")
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        algorithm("nope")
    with pytest.raises(ValueError, match="takes no option 'k'"):
        make_options("acdc", 0.1, k=5)
    assert method_options(AcdcOptions(threshold=0.2)) == AcdcOptions(threshold=0.2)
    with pytest.raises(ValueError, match="not also as keywords"):
        method_options(AcdcOptions(threshold=0.2), abs_value=True)


def test_cli_method_choices_and_flags_come_from_the_registry():
    parser = build_parser()
    args = parser.parse_args(["discover", "--method", "hybrid", "--k", "7", "--threshold", "0.1", "--ig-rule",
                              "midpoint"])
    assert (args.opt_k, args.opt_threshold, args.opt_rule) == (7, 0.1, "midpoint")
    with pytest.raises(SystemExit):
        parser.parse_args(["discover", "--method", "not-registered"])
    sub = next(a for a in parser._subparsers._group_actions[0].choices["discover"]._actions  # type: ignore[union-attr]
               if a.dest == "method")
    assert list(sub.choices) == list(ALGORITHMS)


def test_a_new_method_is_one_options_class_and_one_registration(monkeypatch):
    import acdc_compare.algorithms.registry as registry
    from acdc_compare.circuit import Circuit

    @dataclasses.dataclass(frozen=True)
    class EverythingOptions:
        threshold: float | None = option(None, "unused")

    spec = AlgorithmSpec("everything", EverythingOptions, lambda problem, o: Circuit.full(problem.graph), "keeps all")
    monkeypatch.setattr(registry, "ALGORITHMS", {**registry.ALGORITHMS, "everything": spec})
    graph = Graph(GraphConfig(n_layers=1, n_heads=1, n_kv_heads=1))

    class P:
        pass

    problem = P()
    problem.graph = graph  # type: ignore[attr-defined]
    options = registry.make_options("everything")
    assert registry.run(problem, options).n_kept == graph.n_edges
    assert math.isnan(registry.run(problem, options).scores[0])


def test_reference_order_covers_every_edge_once():
    graph = Graph(GraphConfig(n_layers=2, n_heads=4, n_kv_heads=2))
    edges = [e for step in reference_order(graph) for e in step.edges]
    assert sorted(edges) == list(range(graph.n_edges))


def test_discover_takes_a_threshold_relative_to_the_task_s_gap():
    """threshold_scale="relative" (as a sweep spec spells it): the threshold is a fraction of M(empty) - M(full),
    the circuit records both; a top_n selection has nothing to scale and is refused, as is an unknown scale."""
    from conftest import make_tiny, tiny_task

    from acdc_compare import discover
    from acdc_compare.api import sweep

    model, task = make_tiny("gpt2"), tiny_task()
    found = discover(task, 0.05, model=model, threshold_scale="relative")
    gap = found.metrics["empty"] - found.metrics["full"]
    assert gap > 0 and found.settings["threshold"] == pytest.approx(0.05 * gap)
    assert found.settings["threshold_scale"] == "relative" and found.settings["relative_threshold"] == 0.05
    absolute = discover(task, 0.05 * gap, model=model)
    assert absolute.kept.tolist() == found.kept.tolist() and "threshold_scale" not in absolute.settings
    [swept] = sweep(task, [0.05], model=model, threshold_scale="relative")
    assert swept.kept.tolist() == found.kept.tolist()
    with pytest.raises(ValueError, match="threshold_scale='relative' scales a threshold, but none was given"):
        discover(task, model=model, method="eap-ig", top_n=3, threshold_scale="relative")
    with pytest.raises(ValueError, match=r"threshold_scale must be one of \['absolute', 'relative'\], got 'rel'"):
        discover(task, 0.05, model=model, threshold_scale="rel")
