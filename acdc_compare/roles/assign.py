"""Role assignment: head scores -> IOI role names, with relative thresholds (`RoleThresholds`).

One role per head, in the order name mover, negative name mover, induction, duplicate token, previous token,
S-inhibition; S-inhibition is ranked among the heads left without another role, as attention-pattern roles
are the more specific evidence."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from acdc_compare.graph import head_name, parse_head
from acdc_compare.roles.head_scores import HeadScores
from acdc_compare.types import Role


@dataclass(frozen=True)
class RoleThresholds:
    """When a score makes a role. Relative, so the same defaults serve GPT-2 small and SmolLM2.

    A head gets a role when its score is among the `top_k_*` best of all heads AND at least `*_fraction` of
    the best head's score (of the largest |mover| for movers) AND above the absolute floor. The floors are
    in attention-probability units, which mean the same on every model: `min_attention` = 0.3 is two to
    three times what uniform attention gives on 15-token prompts (0.1-0.16); `min_s_inhibition` = 0.02 is a
    two-point rise in the movers' attention to the subject. Movers have no absolute floor (logit units differ between
    models) beyond `min_mover` = 0.001 logits, which only drops numerically-zero heads; otherwise only the sign
    and the fraction of the largest |mover| count.
    """

    top_k_attention: int = 5
    attention_fraction: float = 0.5
    min_attention: float = 0.3
    top_k_movers: int = 5
    mover_fraction: float = 0.3
    min_mover: float = 1e-3
    top_k_negative: int = 3
    top_k_s_inhibition: int = 5
    s_inhibition_fraction: float = 0.3
    min_s_inhibition: float = 0.02

    def describe(self) -> dict[str, Role]:
        """Role -> the rule in words (for tables and reports)."""
        att = (f"top {self.top_k_attention}, >= {self.attention_fraction:g} x the best head's score and "
               f">= {self.min_attention:g}")
        return {
            Role.NAME_MOVER: (f"mover score > {self.min_mover:g}, top {self.top_k_movers}, >= {self.mover_fraction:g} "
                           "x max |mover|"),
            Role.NEGATIVE_NAME_MOVER: (f"mover score < -{self.min_mover:g}, top {self.top_k_negative} most negative, "
                                    f"|mover| >= {self.mover_fraction:g} x max |mover|"),
            Role.S_INHIBITION: (f"s_inhibition top {self.top_k_s_inhibition}, >= {self.s_inhibition_fraction:g} x the "
                             f"best and >= {self.min_s_inhibition:g}"),
            Role.INDUCTION: f"induction score {att}",
            Role.DUPLICATE_TOKEN: f"duplicate-token score {att}",
            Role.PREVIOUS_TOKEN: f"previous-token score {att}",
        }


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


def mover_heads(mover: torch.Tensor, t: RoleThresholds, negative: bool = False) -> list[str]:
    """The heads whose (negated, with `negative`) mover score passes `t`'s mover thresholds, best first."""
    scale = float(mover.abs().max())
    values = -mover if negative else mover
    k = t.top_k_negative if negative else t.top_k_movers
    H = mover.shape[1]
    return [head_name(*divmod(i, H)) for i in _passing(values, k, t.mover_fraction, t.min_mover, scale)]


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
        Role.NAME_MOVER: mover_heads(scores.mover, t),
        Role.NEGATIVE_NAME_MOVER: mover_heads(scores.mover, t, negative=True),
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
