"""Comparing movers across tasks: are another task's mover heads the model's IOI name movers?"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from acdc_compare.roles.assign import MoverSet, RoleThresholds, movers_of
from acdc_compare.roles.head_scores import HeadScores


@dataclass(frozen=True)
class MoverComparison:
    """Are another task's movers the model's IOI name movers? Both sets by the one mover rule
    (`assign.find_movers`) over all heads; the top mover scores are listed for context."""

    ioi_task: str
    other_task: str
    top_k: int
    ioi_top: tuple[tuple[str, float], ...]
    other_top: tuple[tuple[str, float], ...]
    ioi_name_movers: MoverSet  # the heads assign_roles calls IOI name movers, and the borderline ones
    other_movers: MoverSet
    overlap: tuple[str, ...]  # other task's movers that are IOI name movers
    borderline_overlap: tuple[str, ...]  # shared heads where either side is only borderline
    chance_overlap: float  # expected overlap of random head sets of the two sizes
    jaccard: float
    spearman: float  # rank correlation of mover scores over all heads
    verdict: str


def compare_movers(ioi_scores: HeadScores, other_scores: HeadScores, top_k: int = 5,
                   thresholds: RoleThresholds = RoleThresholds()) -> MoverComparison:
    """The other task's movers against IOI's name movers (one rule for both), their overlap against chance,
    and the rank correlation of all heads' mover scores, with a one-sentence verdict: 'yes' when at least
    half of the other task's movers are IOI name movers, 'partly' for a smaller non-empty overlap, 'no'
    otherwise."""
    if ioi_scores.mover.shape != other_scores.mover.shape:
        raise ValueError("the two HeadScores come from models of different shapes")
    ioi, other = movers_of(ioi_scores, thresholds), movers_of(other_scores, thresholds)
    overlap = tuple(h for h in other.heads if h in ioi.heads)
    either = set(ioi.heads + ioi.borderline)
    borderline = tuple(h for h in other.heads + other.borderline if h in either and h not in overlap)
    a, b = set(ioi.heads), set(other.heads)
    chance = len(a) * len(b) / ioi_scores.mover.numel()
    rho = spearman(ioi_scores.mover.reshape(-1), other_scores.mover.reshape(-1))
    return MoverComparison(
        ioi_task=ioi_scores.task_name, other_task=other_scores.task_name, top_k=top_k,
        ioi_top=_top(ioi_scores, top_k), other_top=_top(other_scores, top_k), ioi_name_movers=ioi,
        other_movers=other, overlap=overlap, borderline_overlap=borderline, chance_overlap=chance,
        jaccard=len(a & b) / len(a | b) if a | b else 0.0, spearman=rho,
        verdict=_verdict(other_scores, other, overlap, borderline, chance, rho))


def _top(scores: HeadScores, k: int) -> tuple[tuple[str, float], ...]:
    return tuple((h, s) for h, s in scores.top("mover", k) if s > 0)


def _verdict(scores: HeadScores, other: MoverSet, overlap: tuple[str, ...], borderline: tuple[str, ...],
             chance: float, rho: float) -> str:
    name = scores.task_name
    if scores.n_mover_prompts == 0:
        return (f"No mover heads can be measured on {name}: its answer never occurs in the prompt, so no head "
                "can move it.")
    edge = f"; borderline: {', '.join(borderline)}" if borderline else ""
    detail = (f"{len(overlap)} of {name}'s {len(other.heads)} movers are IOI name movers "
              f"({', '.join(overlap) or 'none'}; chance {chance:.2f}{edge}), and mover scores over all heads "
              f"have rank correlation {rho:.2f}")
    if not other.heads:
        return f"No: {name} has no mover head ({detail})."
    if len(overlap) >= max(1, math.ceil(len(other.heads) / 2)):
        return f"Yes, largely: {detail}."
    return f"Partly: {detail}." if overlap else f"No: {detail}."


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman rank correlation (average ranks for ties); NaN entries are dropped pairwise."""
    x, y = x.double().reshape(-1).cpu(), y.double().reshape(-1).cpu()
    keep = torch.isfinite(x) & torch.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 2:
        return math.nan
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = float(rx.norm() * ry.norm())
    return float((rx * ry).sum()) / denom if denom > 0 else math.nan


def _ranks(x: torch.Tensor) -> torch.Tensor:
    order = torch.argsort(x)
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(len(x), dtype=x.dtype)
    for value in torch.unique(x):
        tied = x == value
        if int(tied.sum()) > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks
