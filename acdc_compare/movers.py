"""The mover question answered from circuits: which heads of a task's circuit move its answer, and are they
the heads that move IOI's names in IOI's circuit on the same model?

A head of a circuit is a mover of its task when all three hold (`MoverRule`):
1. it is on a kept path to the logits: it sends a kept edge on an input->logits path (`Circuit.functional_heads`);
2. at the scored position it attends to the answer's token: `HeadScores.answer_attention` >= `min_attention`
   (attention probability, mean over the scored positions where the answer occurs in the prompt);
3. its output raises the answer's logit: `HeadScores.mover` (attention to the answer x the head's direct logit
   contribution to correct - wrong) >= `mover_fraction` x the largest |mover| of any head on that task.

IOI's circuit movers found by the same rule on IOI's circuit are the reference ("IOI's name movers" below):
the overlap of another task's movers with them is set against chance, the overlap two sets of those sizes
drawn at random from all the model's heads would have on average (a x b / n_heads).
"""

from __future__ import annotations

from dataclasses import dataclass

from acdc_compare.circuit import Circuit
from acdc_compare.graph import head_name
from acdc_compare.roles.assign import RoleThresholds
from acdc_compare.roles.head_scores import HeadScores


@dataclass(frozen=True)
class MoverRule:
    """The thresholds of rules 2 and 3 in the module docstring; by default the ones `assign_roles` applies to
    movers over all heads (`RoleThresholds`)."""

    min_attention: float = RoleThresholds.min_attention
    mover_fraction: float = RoleThresholds.mover_fraction

    def describe(self) -> str:
        return (f"on a kept input->logits path, attention to the answer >= {self.min_attention:g} and mover score "
                f">= {self.mover_fraction:g} x the task's largest |mover score|")


def circuit_movers(circuit: Circuit, scores: HeadScores, rule: MoverRule = MoverRule()) -> tuple[str, ...]:
    """The circuit's mover heads (see the module docstring), by mover score, largest first."""
    if scores.n_mover_prompts == 0:
        return ()
    scale = float(scores.mover.abs().max())
    if scale <= 0:
        return ()
    on_path = circuit.functional_heads()
    found = []
    for layer in range(scores.n_layers):
        for h in range(scores.n_heads):
            name = head_name(layer, h)
            mover = float(scores.mover[layer, h])
            if (name in on_path and float(scores.answer_attention[layer, h]) >= rule.min_attention
                    and mover >= rule.mover_fraction * scale):
                found.append((mover, name))
    return tuple(name for _, name in sorted(found, reverse=True))


@dataclass(frozen=True)
class MoverOverlap:
    """A task's circuit movers against IOI's: the shared heads and the overlap expected by chance."""

    task: str
    movers: tuple[str, ...]
    ioi_movers: tuple[str, ...]
    n_heads: int  # heads of the model, the population chance draws from

    def __post_init__(self) -> None:
        if self.n_heads < 1:
            raise ValueError(f"n_heads must be >= 1, got {self.n_heads}")

    @property
    def shared(self) -> tuple[str, ...]:
        ioi = set(self.ioi_movers)
        return tuple(h for h in self.movers if h in ioi)

    @property
    def chance(self) -> float:
        return len(self.movers) * len(self.ioi_movers) / self.n_heads

    def verdict(self) -> str:
        """One sentence: does this task use IOI's movers, movers of its own, or none?"""
        if not self.movers:
            return f"{self.task}: no head of its circuit moves the answer"
        own = len(self.movers) - len(self.shared)
        if not self.shared:
            return f"{self.task}: {len(self.movers)} movers of its own, none of IOI's"
        kind = "IOI's name movers" if own == 0 else f"IOI's name movers and {own} of its own"
        return (f"{self.task}: {kind} ({len(self.shared)} shared, {self.chance:.2f} expected by chance)")


__all__ = ["MoverOverlap", "MoverRule", "circuit_movers"]
