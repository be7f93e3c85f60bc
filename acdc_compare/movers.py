"""The mover question answered from circuits: which heads of a task's circuit move its answer, and are they
the heads that move IOI's names on the same model?

A head of a circuit is a mover of its task when both hold:
1. it is on a kept path to the logits: it sends a kept edge on an input->logits path (`Circuit.functional_heads`);
2. it passes the one mover rule on the task's head scores (`roles.assign.find_movers`, described by
   `RoleThresholds.describe_movers`): among the top mover scores, a fraction of the best one, and attending
   to the answer's token. Heads passing it only when relaxed are borderline, and shown as such.

IOI's name movers are the heads the same rule finds on IOI (the heads `assign_roles` calls name movers): the
overlap of another task's circuit movers with them is set against chance, the overlap two sets of those sizes
drawn at random from all the model's heads would have on average (a x b / n_heads).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from acdc_compare.circuit import Circuit
from acdc_compare.roles.assign import MoverSet, RoleThresholds, movers_of
from acdc_compare.roles.head_scores import HeadScores


def circuit_movers(circuit: Circuit, scores: HeadScores, thresholds: RoleThresholds = RoleThresholds(),
                   answer: str = "correct") -> MoverSet:
    """The task's movers (and borderline heads) that lie on the circuit's kept input->logits paths, toward the
    "correct" answer or the one the model gives ("given"), with their mover scores' bootstrap intervals."""
    return movers_of(scores, thresholds, answer).within(circuit.functional_heads())


@dataclass(frozen=True)
class MoverOverlap:
    """A task's circuit movers against IOI's: the shared heads and the overlap expected by chance.
    `intervals`: head -> its mover score's 95% bootstrap interval on the task (`MoverSet.intervals`), quoted
    beside the shared heads as the verdict's evidence."""

    task: str
    movers: tuple[str, ...]
    ioi_movers: tuple[str, ...]
    n_heads: int  # heads of the model, the population chance draws from
    intervals: Mapping[str, tuple[float, float]] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def of(cls, movers: MoverSet, ioi: MoverSet, n_heads: int) -> MoverOverlap:
        """The overlap of two mover sets, keeping `movers`' intervals."""
        return cls(movers.task, movers.heads, ioi.heads, n_heads, dict(movers.intervals))

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

    def evidence(self, heads: tuple[str, ...]) -> str:
        """'a23.h0 [0.21, 0.35], a23.h1': the heads, each with its interval where known."""
        return MoverSet(self.task, heads, intervals=self.intervals).describe(intervals=True)

    def answer(self) -> str:
        """'yes' / 'partly' / 'no' with its evidence: 'partly: 1 of its 3 movers are IOI's (a23.h0 [0.21, 0.35]);
        chance 0.04' (yes: at least half the movers are IOI's; chance: the overlap two random sets of these
        sizes would have on average)."""
        n, k = len(self.movers), len(self.shared)
        if not n:
            return "no: no head of its circuit moves the answer"
        if not k:
            return (f"no: {n} mover{'s' * (n > 1)} of its own ({self.evidence(self.movers)}), none of IOI's; "
                    f"chance {self.chance:.2f}")
        share = "yes" if 2 * k >= n else "partly"
        return f"{share}: {k} of its {n} movers are IOI's ({self.evidence(self.shared)}); chance {self.chance:.2f}"

    def verdict(self) -> str:
        """One sentence: does this task use IOI's movers, movers of its own, or none?"""
        if not self.movers:
            return f"{self.task}: no head of its circuit moves the answer"
        own = len(self.movers) - len(self.shared)
        if not self.shared:
            n = len(self.movers)
            return f"{self.task}: {n} mover{'s' * (n != 1)} of its own, none of IOI's"
        kind = "IOI's name movers" if own == 0 else f"IOI's name movers and {own} of its own"
        return (f"{self.task}: {kind} ({len(self.shared)} shared: {self.evidence(self.shared)}; "
                f"{self.chance:.2f} expected by chance)")


__all__ = ["MoverOverlap", "circuit_movers"]
