"""From which span of the prompt a task's mover heads read the answer (issue #34, item 6).

Per span S of the task's span graph, the circuit "cut at S" keeps every edge except the edges into the key and
value inputs of the movers' key-value groups at S: the movers cannot read S through attention (at S their keys
and values are the ablated run's), and everything else is intact. A span's effect on a prompt is the task's
score (logit difference correct - wrong; probability difference for set-valued answers) under the full model
minus under the circuit cut at S, in the score's own units (not normalised, so spans of one task compare
directly; `SpanReads.full` is the full model's mean score, for a share). Its 95% interval is the percentile
bootstrap over the prompts holding S (`stats.bootstrap_interval`).

Keys and values are computed once per key-value group, so on a grouped-query model the cut also blinds every
other query head of the movers' groups (`SpanReads.readers`): the effect is that of the groups, not of the
movers alone. A span whose positions and every earlier one carry the same tokens in the clean and the
ablated prompts has effect 0 (its keys and values are the same in both runs); a span of identical tokens later
in the prompt may still carry an effect, through what earlier layers moved into it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from acdc_compare.algorithms.problem import Problem
from acdc_compare.fmt import num
from acdc_compare.graph import Graph, parse_head
from acdc_compare.stats import bootstrap_interval
from acdc_compare.tasks.registry import OrderMeaningPair

NO_SINGLE_SPAN = "no single span"
READ_RULE = ("the span read is the one of largest mean effect whose interval lies above 0, together with any other "
             "such span whose interval overlaps its (not told apart)")
IOI_ANSWER_SPAN = "IO"  # IOI's known story: the name movers read the indirect object's name (from END)


@dataclass(frozen=True)
class SpanRead:
    """One span's effect: the mean over the `n` prompts holding it, with its 95% bootstrap interval."""

    span: str
    mean: float
    low: float
    high: float
    n: int

    @property
    def above_zero(self) -> bool:
        return self.low > 0

    def describe(self) -> str:
        """'IO (effect 2.10 [1.80, 2.40])'."""
        return f"{self.span} (effect {num(self.mean, fixed=2)} [{num(self.low, fixed=2)}, {num(self.high, fixed=2)}])"


@dataclass(frozen=True)
class SpanReads:
    """Per span, the drop in the task's score when the movers' key-value groups cannot read that span.

    heads: the movers; readers: every query head of their key-value groups (all blinded alike); receivers: the
    k and v inputs cut; full: the full model's mean score; unit: what the score is."""

    task: str
    heads: tuple[str, ...]
    readers: tuple[str, ...]
    receivers: tuple[str, ...]
    full: float
    unit: str
    reads: tuple[SpanRead, ...]

    def read(self, span: str) -> SpanRead:
        for r in self.reads:
            if r.span == span:
                return r
        raise KeyError(f"no span {span!r}; spans: {', '.join(r.span for r in self.reads)}")

    def top(self) -> tuple[SpanRead, ...]:
        """The spans read (`READ_RULE`), the largest first; empty when no interval lies above 0."""
        above = sorted((r for r in self.reads if r.above_zero), key=lambda r: -r.mean)
        if not above:
            return ()
        lead = above[0]
        return (lead, *(r for r in above[1:] if r.high >= lead.low))

    @property
    def source(self) -> str:
        """The span the movers read the answer from, 'IO or END' where two are not told apart, or
        `NO_SINGLE_SPAN`."""
        top = self.top()
        return " or ".join(r.span for r in top) if top else NO_SINGLE_SPAN

    def verdict(self) -> str:
        """'the movers read the answer from IO (effect 2.10 [1.80, 2.40])', or why no single span."""
        top = self.top()
        if not top:
            return f"{NO_SINGLE_SPAN}: no span's effect interval lies above 0"
        tied = " (intervals overlap)" if len(top) > 1 else ""
        return f"the movers read the answer from {' or '.join(r.describe() for r in top)}{tied}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (`from_dict` reads them back), with the verdict and its source span."""
        out = asdict(self)
        out.update(heads=list(self.heads), readers=list(self.readers), receivers=list(self.receivers),
                   reads=[asdict(r) for r in self.reads], source=self.source, verdict=self.verdict())
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SpanReads:
        def value(x: Any) -> float:
            return math.nan if x is None else float(x)

        reads = tuple(SpanRead(r["span"], value(r["mean"]), value(r["low"]), value(r["high"]), int(r["n"]))
                      for r in d["reads"])
        return cls(d["task"], tuple(d["heads"]), tuple(d["readers"]), tuple(d["receivers"]), value(d["full"]),
                   d["unit"], reads)


def mover_kv_receivers(graph: Graph, heads: Sequence[str]) -> tuple[int, ...]:
    """The k and v receivers of the key-value groups the heads read (`a3.kv1<k>`, or `a3.h5<k>` without
    grouping), in receiver order, each once."""
    if not heads:
        raise ValueError("give at least one mover head (names like 'a9.h9')")
    found = set()
    for name in heads:
        layer, head = parse_head(name)
        if not (0 <= layer < graph.n_layers and 0 <= head < graph.n_heads):
            raise ValueError(f"head {name!r} is not in a model of {graph.n_layers} layers x {graph.n_heads} heads")
        group = head // graph.group_size
        found.update((graph.k_receiver(layer, group), graph.v_receiver(layer, group)))
    return tuple(sorted(found))


def cut_circuits(graph: Graph, receivers: Sequence[int]) -> torch.Tensor:
    """Kept edges [1 + n_spans, n_edges]: the full circuit, then per span the full circuit less every edge
    (residual and direct) into `receivers` at that span."""
    if not graph.has_spans:
        raise ValueError(f"span reads need a span graph; {graph!r} has no spans (prepare with positions='spans')")
    into_b = torch.isin(graph.base.edge_receiver_tensor, torch.as_tensor(list(receivers), dtype=torch.long))
    kept_kbs = torch.ones(1 + graph.n_spans, graph.n_base_edges, graph.n_spans, dtype=torch.bool)
    for j in range(graph.n_spans):
        kept_kbs[1 + j, :, j] = ~into_b
    return kept_kbs.reshape(1 + graph.n_spans, graph.n_edges)  # a base edge's span edges are consecutive


def span_reads(problem: Problem, heads: Sequence[str], *, n_resamples: int = 1000, seed: int = 0) -> SpanReads:
    """Each span's effect on the task's score of cutting the movers' k and v inputs there (module docstring):
    the full circuit and one cut circuit per span in one batched engine run from the movers' first layer on
    (the layers below are the full circuit's, run once; several runs where the memory budget fits fewer
    circuits per forward). `problem` must be on the task's span graph; its metric is not used. Bootstrap:
    `n_resamples` resamples of the prompts from `seed`."""
    graph, task = problem.graph, problem.task
    receivers = mover_kv_receivers(graph, heads)
    kept_ke = cut_circuits(graph, receivers)
    per_pass = max(1, problem.batch_that_fits(grad=False, limit=int(kept_ke.shape[0])))
    start = min(problem.stage(r) for r in receivers)  # every circuit is the full one before the movers' layer
    base = problem.checkpoint(kept_ke[0])
    scores_kn = torch.cat([task.score_per_prompt(problem.patcher.run(problem.ctx, part, start, base)[0]).cpu()
                           for part in kept_ke.split(per_pass)])  # [1 + n_spans, N]
    effects_ns = (scores_kn[:1] - scores_kn[1:]).T  # [N, n_spans]
    present_ns = _present(task.span_schema().index, graph.n_spans)
    reads = []
    for j, span in enumerate(graph.spans):
        weight_n = present_ns[:, j].double()
        n = int(weight_n.sum())
        mean = float((effects_ns[:, j] * weight_n).sum() / n) if n else math.nan
        low, high = bootstrap_interval(effects_ns[:, j], weight_n, n_resamples=n_resamples, seed=seed)
        reads.append(SpanRead(span, mean, float(low), float(high), n))
    readers = tuple(dict.fromkeys(graph.sender_names[s] for r in receivers for s in graph.receiver_node_senders(r)))
    unit = "probability difference" if task.correct_sets is not None else "logit difference"
    return SpanReads(task.name, tuple(heads), readers, tuple(graph.receiver_names[r] for r in receivers),
                     float(scores_kn[0].mean()), unit, tuple(reads))


def pair_text(pair: OrderMeaningPair, agree: SpanReads, disagree: SpanReads) -> str:
    """'pet position: in pet-last (order agrees) the movers read from pet (effect 2.10 [1.80, 2.40]); in pet-first
    (order disagrees) from no single span'."""
    def where(reads: SpanReads) -> str:
        top = reads.top()
        return " or ".join(r.describe() for r in top) if top else NO_SINGLE_SPAN

    return (f"{pair.name}: in {pair.agree_task} (order agrees) the movers read from {where(agree)}; "
            f"in {pair.disagree_task} (order disagrees) from {where(disagree)}")


def ioi_story(reads: SpanReads) -> str:
    """Whether IOI's span reads agree with the known story (Wang et al.: the name movers attend from END to the
    indirect object's name and copy it, so IO is the span with the largest effect)."""
    top = reads.top()
    found = "no span's interval lies above 0" if not top else f"the largest is {top[0].describe()}"
    agrees = bool(top) and top[0].span == IOI_ANSWER_SPAN
    return (f"{reads.task}: the known story (name movers read the {IOI_ANSWER_SPAN} name from END) has "
            f"{IOI_ANSWER_SPAN} the span of largest effect; {found}: {'agrees' if agrees else 'differs'}")


def _present(index_np: torch.Tensor, n_spans: int) -> torch.Tensor:
    """BoolTensor[N, n_spans]: which spans each prompt holds at some position (index_np: [N, P] span indices)."""
    return torch.nn.functional.one_hot(index_np, n_spans).any(1)


__all__ = ["IOI_ANSWER_SPAN", "NO_SINGLE_SPAN", "READ_RULE", "SpanRead", "SpanReads", "cut_circuits", "ioi_story", "mover_kv_receivers",
           "pair_text", "span_reads"]
