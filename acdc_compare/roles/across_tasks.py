"""Comparing movers across tasks: are another task's mover heads the model's IOI name movers?"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from acdc_compare.roles.assign import RoleThresholds, assign_roles
from acdc_compare.roles.head_scores import HeadScores
from acdc_compare.types import Role


@dataclass(frozen=True)
class MoverComparison:
    """Are another task's mover heads the model's IOI name movers?"""

    ioi_task: str
    other_task: str
    top_k: int
    ioi_top: tuple[tuple[str, float], ...]
    other_top: tuple[tuple[str, float], ...]
    overlap: tuple[str, ...]
    chance_overlap: float  # expected overlap of two random top-k sets
    jaccard: float
    spearman: float  # rank correlation of mover scores over all heads
    ioi_name_movers: tuple[str, ...]  # heads assign_roles calls IOI name movers
    other_in_ioi_name_movers: tuple[str, ...]
    verdict: str


def compare_movers(ioi_scores: HeadScores, other_scores: HeadScores, top_k: int = 5,
                   thresholds: RoleThresholds = RoleThresholds()) -> MoverComparison:
    """Top-k (positive) mover heads of both tasks, their overlap, and the rank correlation of all heads'
    mover scores, with a one-sentence verdict: 'yes' when at least half of the comparison task's top-k
    movers are IOI top-k movers, 'partly' for a smaller non-empty overlap, 'no' otherwise."""
    if ioi_scores.mover.shape != other_scores.mover.shape:
        raise ValueError("the two HeadScores come from models of different shapes")
    ioi_top = tuple((h, s) for h, s in ioi_scores.top("mover", top_k) if s > 0)
    other_top = tuple((h, s) for h, s in other_scores.top("mover", top_k) if s > 0)
    a, b = {h for h, _ in ioi_top}, {h for h, _ in other_top}
    overlap = tuple(h for h, _ in other_top if h in a)
    n_heads = ioi_scores.mover.numel()
    chance = top_k * top_k / n_heads
    jaccard = len(a & b) / len(a | b) if a | b else 0.0
    rho = spearman(ioi_scores.mover.reshape(-1), other_scores.mover.reshape(-1))
    nm = tuple(h for h, r in assign_roles(ioi_scores, thresholds, ioi=True).items() if r == Role.NAME_MOVER)
    in_nm = tuple(h for h, _ in other_top if h in nm)
    name = other_scores.task_name
    listing = ", ".join(overlap) if overlap else "none"
    detail = (f"{len(overlap)} of {name}'s top-{top_k} mover heads are IOI top-{top_k} movers ({listing}; "
              f"chance {chance:.2f}), {len(in_nm)} of them IOI name movers, and mover scores over all heads "
              f"have rank correlation {rho:.2f}")
    if other_scores.n_mover_prompts == 0:
        verdict = (f"No mover heads can be measured on {name}: its answer never occurs in the prompt, so no head "
                   "can move it.")
    elif not other_top:
        verdict = f"No: {name} has no head with a positive mover score."
    elif len(overlap) >= max(1, math.ceil(len(other_top) / 2)):
        verdict = f"Yes, largely: {detail}."
    elif overlap:
        verdict = f"Partly: {detail}."
    else:
        verdict = f"No: {detail}."
    return MoverComparison(ioi_task=ioi_scores.task_name, other_task=name, top_k=top_k, ioi_top=ioi_top,
                           other_top=other_top, overlap=overlap, chance_overlap=chance, jaccard=jaccard,
                           spearman=rho, ioi_name_movers=nm, other_in_ioi_name_movers=in_nm, verdict=verdict)


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
