"""Head-role tables: one row per labelled head with its deciding score, rank and rule, and their plain text."""

from __future__ import annotations

import math
from typing import Any

import torch

from acdc_compare.graph import parse_head
from acdc_compare.roles.assign import NON_IOI_NAMES, ROLE_PRIORITY, ROLE_SCORE, MoverSet, RoleThresholds
from acdc_compare.roles.head_scores import HeadScores
from acdc_compare.types import Role


BORDERLINE = "(borderline)"


def role_labels(roles: dict[str, str], name_movers: MoverSet | None = None) -> dict[str, str]:
    """Head -> role, with the borderline name movers of `name_movers` labelled 'name mover (borderline)'
    (or 'mover (borderline)' where the roles use the task-neutral names)."""
    out = dict(roles)
    mover = Role.NAME_MOVER if Role.NAME_MOVER in roles.values() or not roles else Role.MOVER
    for head in (name_movers.borderline if name_movers else ()):
        out.setdefault(head, f"{mover} {BORDERLINE}")
    return out


def role_table(scores: HeadScores, roles: dict[str, str], thresholds: RoleThresholds = RoleThresholds(),
               name_movers: MoverSet | None = None) -> list[dict[str, Any]]:
    """One row per labelled head (in role order, then by the role's score): head, role, the deciding score,
    its rank among all heads, the rule, and all five scores; borderline name movers (`name_movers`) follow the
    name movers, labelled as such."""
    rules = thresholds.describe()
    rows: list[dict[str, Any]] = []
    for head, role in role_labels(roles, name_movers).items():
        ioi_role = _ioi_role(role)
        attr = ROLE_SCORE[ioi_role]
        values = scores.score(attr)
        layer, h = parse_head(head)
        value = float(values[layer, h])
        flat = torch.nan_to_num(values.reshape(-1), nan=-math.inf)
        signed = -flat if ioi_role == Role.NEGATIVE_NAME_MOVER else flat
        rank = 1 + int((signed > (-value if ioi_role == Role.NEGATIVE_NAME_MOVER else value)).sum())
        rows.append({"head": head, "role": role, "score_name": attr, "score": value, "rank": rank,
                     "rule": rules[ioi_role], **scores.head_scores(head)})
    order = {r: i for i, r in enumerate(ROLE_PRIORITY)}
    rows.sort(key=lambda r: (order[_ioi_role(r["role"])], r["role"].endswith(BORDERLINE), r["rank"]))
    return rows


def _ioi_role(role: str) -> Role:
    """The IOI role a (task-neutral, borderline) label stands for."""
    base = role.removesuffix(f" {BORDERLINE}")
    return {v: k for k, v in NON_IOI_NAMES.items()}.get(base, Role(base))


def format_role_table(scores: HeadScores, rows: list[dict[str, Any]],
                      thresholds: RoleThresholds = RoleThresholds()) -> str:
    """Plain-text role table: one line per labelled head, then the rule of every role and the sources."""
    head = f"{'head':<8} {'role':<20} {'score':>8} {'rank':>4}  {'attn->ans':>9} {'DLA':>7}"
    lines = [f"Head roles on {scores.task_name}", head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['head']:<8} {r['role']:<20} {r['score']:>8.3f} {r['rank']:>4}  "
                     f"{r['answer_attention']:>9.2f} {r['direct_logit']:>7.2f}")
    if not rows:
        lines.append("(no head passes a threshold)")
    lines.append("Rules (score = the role's own score; attn->ans and DLA are the two factors of the mover score):")
    lines += [f"  {role}: {rule}" for role, rule in thresholds.describe().items()]
    s_inh = (f"S-inhibition measured against movers {', '.join(scores.s_inhibition_movers)} "
             f"({scores.ablation} ablation, {scores.info.get('s_inhibition_path', '')} path)"
             if scores.s_inhibition_movers else "S-inhibition not measured")
    lines.append(f"Duplicate-token/induction scores on {scores.repeat_source}; mover scores over "
                 f"{scores.n_mover_prompts} scored positions; {s_inh}.")
    return "\n".join(lines)
