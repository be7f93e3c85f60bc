"""Role assignment: head scores -> IOI role names, with relative thresholds (`RoleThresholds`).

One role per head, in the order name mover, negative name mover, induction, duplicate token, previous token,
S-inhibition; S-inhibition is ranked among the heads left without another role, as attention-pattern roles
are the more specific evidence."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from acdc_compare.graph import head_name, parse_head
from acdc_compare.roles.head_scores import HeadScores
from acdc_compare.types import Role


@dataclass(frozen=True)
class RoleThresholds:
    """When a score makes a role. Relative, so the same defaults serve GPT-2 small and SmolLM2.

    A head gets a role when its score is among the `top_k_*` best of all heads AND at least `*_fraction` of
    the best head's score (for negative movers: of the largest |mover|) AND above the absolute floor. The floors
    are in attention-probability units, which mean the same on every model: `min_attention` = 0.3 is two to
    three times what uniform attention gives on 15-token prompts (0.1-0.16); movers must attend to the answer
    that much too; `min_s_inhibition` = 0.02 is a two-point rise in the movers' attention to the subject. Mover
    scores have no absolute floor (logit units differ between models) beyond `min_mover` = 0.001 logits, which
    only drops numerically-zero heads. One mover rule (`find_movers`) makes IOI's name movers, other tasks'
    movers and circuit movers alike; heads it passes only when relaxed by `borderline_factor` are borderline.
    """

    top_k_attention: int = 5
    attention_fraction: float = 0.5
    min_attention: float = 0.3
    top_k_movers: int = 5
    mover_fraction: float = 0.3
    min_mover: float = 1e-3
    borderline_factor: float = 0.5  # a head passing the mover rule only with its thresholds x this is borderline
    top_k_negative: int = 3
    top_k_s_inhibition: int = 5
    s_inhibition_fraction: float = 0.3
    min_s_inhibition: float = 0.02

    def describe(self) -> dict[str, Role]:
        """Role -> the rule in words (for tables and reports)."""
        att = (f"top {self.top_k_attention}, >= {self.attention_fraction:g} x the best head's score and "
               f">= {self.min_attention:g}")
        return {
            Role.NAME_MOVER: self.describe_movers(),
            Role.NEGATIVE_NAME_MOVER: (f"mover score < -{self.min_mover:g}, top {self.top_k_negative} most negative, "
                                    f"|mover| >= {self.mover_fraction:g} x max |mover|"),
            Role.S_INHIBITION: (f"s_inhibition top {self.top_k_s_inhibition}, >= {self.s_inhibition_fraction:g} x the "
                             f"best and >= {self.min_s_inhibition:g}"),
            Role.INDUCTION: f"induction score {att}",
            Role.DUPLICATE_TOKEN: f"duplicate-token score {att}",
            Role.PREVIOUS_TOKEN: f"previous-token score {att}",
        }


    def describe_movers(self) -> str:
        """The one mover rule in words (name movers on IOI, movers on other tasks, circuit movers)."""
        f = self.borderline_factor
        return (f"mover score > {self.min_mover:g}, top {self.top_k_movers}, >= {self.mover_fraction:g} x the best "
                f"mover score, attention to the answer >= {self.min_attention:g} (borderline: passes only with the "
                f"thresholds x {f:g} and the top {round(self.top_k_movers / f)})")


@dataclass(frozen=True)
class MoverSet:
    """A task's movers by the one rule (`RoleThresholds.describe_movers`: IOI's name movers are IOI's), best
    first, and the borderline heads: those passing it only with its thresholds relaxed, or only with their point
    estimate or the upper bound of their interval. `intervals`: head -> (low, high), the 95% bootstrap interval
    of its mover score over prompts, for the movers and borderline heads (empty on hand-set scores); not part
    of equality. `answer`: the answer the scores move ("correct", or "given": the one the model gives)."""

    task: str
    heads: tuple[str, ...] = ()
    borderline: tuple[str, ...] = ()
    intervals: Mapping[str, tuple[float, float]] = field(default_factory=dict, compare=False, hash=False)
    answer: str = field(default="correct", compare=False)

    def within(self, allowed: set[str] | frozenset[str]) -> MoverSet:
        """The same set restricted to `allowed` heads (a circuit's heads on its kept paths)."""
        return MoverSet(self.task, tuple(h for h in self.heads if h in allowed),
                        tuple(h for h in self.borderline if h in allowed),
                        {h: iv for h, iv in self.intervals.items() if h in allowed}, self.answer)

    def evidence(self, head: str) -> str:
        """'a23.h0 [0.21, 0.35]': the head with its mover score's interval (the head alone without one)."""
        iv = self.intervals.get(head)
        return head if iv is None else f"{head} [{iv[0]:.2g}, {iv[1]:.2g}]"

    def describe(self, intervals: bool = False) -> str:
        """'a23.h0, a23.h1 (borderline: a23.h7)', or 'none'; with `intervals`, each head's interval after it."""
        name = self.evidence if intervals else str
        text = ", ".join(map(name, self.heads)) or "none"
        return text + (f" (borderline: {', '.join(map(name, self.borderline))})" if self.borderline else "")


def find_movers(mover: torch.Tensor, attention: torch.Tensor, t: RoleThresholds = RoleThresholds(),
                task: str = "", low: torch.Tensor | None = None, high: torch.Tensor | None = None,
                answer: str = "correct") -> MoverSet:
    """The heads passing the mover rule on these scores: among the top k mover scores, at least
    `mover_fraction` x the best (positive) mover score - a negative mover does not set the cut-off - and
    attending to the answer at least `min_attention`; borderline: passing with the fraction and attention
    floor x `borderline_factor` and the top k / `borderline_factor`.

    With intervals (`low`, `high` [L, H]: each head's bootstrap interval of its mover score), a mover's LOWER
    bound must pass the score thresholds (the fraction of the best point estimate, and `min_mover`); a head
    whose point estimate or upper bound passes (relaxed as above) but whose lower bound does not is borderline.
    Without them every bound is the point estimate: the rule on point estimates."""
    flat = torch.nan_to_num(mover.reshape(-1), nan=-math.inf)
    att = torch.nan_to_num(attention.reshape(-1), nan=0.0)
    lo = flat if low is None else low.reshape(-1)
    hi = flat if high is None else high.reshape(-1)
    best, H, f = float(flat.max()), mover.shape[1], t.borderline_factor
    if not math.isfinite(best) or best <= t.min_mover:
        return MoverSet(task, answer=answer)
    heads: list[str] = []
    borderline: list[str] = []
    intervals: dict[str, tuple[float, float]] = {}
    for rank, i in enumerate(torch.argsort(flat, descending=True)[:round(t.top_k_movers / f)].tolist()):
        m, a = float(flat[i]), float(att[i])
        lo_i = m if math.isnan(float(lo[i])) else float(lo[i])
        hi_i = m if math.isnan(float(hi[i])) else max(float(hi[i]), m)
        if m <= t.min_mover:
            break
        name = head_name(*divmod(i, H))
        if rank < t.top_k_movers and min(lo_i, m) >= t.mover_fraction * best and lo_i > t.min_mover \
                and a >= t.min_attention:
            heads.append(name)
        elif hi_i >= f * t.mover_fraction * best and a >= f * t.min_attention:
            borderline.append(name)
        else:
            continue
        if low is not None and high is not None:
            intervals[name] = (float(low.reshape(-1)[i]), float(high.reshape(-1)[i]))
    return MoverSet(task, tuple(heads), tuple(borderline), intervals, answer)


def movers_of(scores: HeadScores, t: RoleThresholds = RoleThresholds(), answer: str = "correct") -> MoverSet:
    """The task's movers (`find_movers`) from its head scores, toward the "correct" answer or the one the model
    gives ("given"), with each head's bootstrap interval where the per-prompt scores were kept; none where the
    answer never occurs in the prompt."""
    pm = scores.movers_toward(answer)
    if scores.n_mover_prompts == 0 or (pm is not None and pm.count == 0):
        return MoverSet(scores.task_name, answer=answer)
    toward = scores.mover_toward(answer)
    if toward is None:  # hand-set scores: no per-prompt scores toward the given answer
        return MoverSet(scores.task_name, answer=answer)
    interval = scores.mover_interval(answer)
    low, high = interval if interval is not None else (None, None)
    return find_movers(*toward, t, scores.task_name, low, high, answer)


def both_movers(scores: HeadScores, t: RoleThresholds = RoleThresholds()) -> tuple[MoverSet, MoverSet]:
    """The movers toward the correct answer and toward the answer the model gives (`movers_of`)."""
    return movers_of(scores, t), movers_of(scores, t, "given")


# A head qualifying for several roles takes the first; S-inhibition is ranked among the heads left over.
ROLE_PRIORITY: tuple[Role, ...] = (Role.NAME_MOVER, Role.NEGATIVE_NAME_MOVER, Role.INDUCTION, Role.DUPLICATE_TOKEN,
                                   Role.PREVIOUS_TOKEN, Role.S_INHIBITION)
ROLE_SCORE = {Role.NAME_MOVER: "mover", Role.NEGATIVE_NAME_MOVER: "mover", Role.S_INHIBITION: "s_inhibition",
               Role.INDUCTION: "induction", Role.DUPLICATE_TOKEN: "duplicate_token",
               Role.PREVIOUS_TOKEN: "previous_token"}
NON_IOI_NAMES = {Role.NAME_MOVER: Role.MOVER, Role.NEGATIVE_NAME_MOVER: Role.NEGATIVE_MOVER}


def _passing(values: torch.Tensor, top_k: int, fraction: float, floor: float, scale: float | None = None) -> list[int]:
    """Flat indices of heads in the top k, >= fraction x scale (default: the best value) and > floor."""
    flat = torch.nan_to_num(values.reshape(-1), nan=-math.inf)
    best = float(flat.max()) if scale is None else scale
    if not math.isfinite(best) or best <= 0:
        return []
    order = torch.argsort(flat, descending=True)[:top_k]
    return [int(i) for i in order if float(flat[i]) >= fraction * best and float(flat[i]) > floor]


def negative_movers(mover: torch.Tensor, t: RoleThresholds) -> list[str]:
    """The heads whose negated mover score passes `t`'s negative-mover thresholds (a fraction of the largest
    |mover|: a negative mover must be comparable to the movers it works against), most negative first."""
    scale = float(mover.abs().max())
    H = mover.shape[1]
    return [head_name(*divmod(i, H)) for i in _passing(-mover, t.top_k_negative, t.mover_fraction, t.min_mover, scale)]


def assign_roles(scores: HeadScores, thresholds: RoleThresholds = RoleThresholds(),
                 ioi: bool | None = None) -> dict[str, Role]:
    """Head name -> role, for the heads passing a threshold (one role per head, `ROLE_PRIORITY` order;
    S-inhibition is ranked among the heads without another role).

    Role names are those of `reference_circuits.IOI_ROLES` (backup name movers are not detected: telling
    them apart needs the main movers ablated). With `ioi=False` (default: the task name does not contain
    'ioi') movers are called 'mover' / 'negative mover'."""
    t = thresholds
    if ioi is None:
        ioi = "ioi" in scores.task_name.lower()
    H = scores.n_heads
    candidates: dict[Role, list[str]] = {
        Role.NAME_MOVER: list(movers_of(scores, t).heads),
        Role.NEGATIVE_NAME_MOVER: negative_movers(scores.mover, t),
    }
    for role, attr in ((Role.INDUCTION, "induction"), (Role.DUPLICATE_TOKEN, "duplicate_token"),
                       (Role.PREVIOUS_TOKEN, "previous_token")):
        candidates[role] = [head_name(*divmod(i, H)) for i in _passing(
            getattr(scores, attr), t.top_k_attention, t.attention_fraction, t.min_attention)]
    roles: dict[str, Role] = {}
    for role in ROLE_PRIORITY[:-1]:
        for head in candidates[role]:
            roles.setdefault(head, role if ioi else NON_IOI_NAMES.get(role, role))
    s_inh = scores.s_inhibition.clone()
    for head in roles:
        s_inh[parse_head(head)] = math.nan
    for i in _passing(s_inh, t.top_k_s_inhibition, t.s_inhibition_fraction, t.min_s_inhibition):
        roles[head_name(*divmod(i, H))] = Role.S_INHIBITION
    return roles
