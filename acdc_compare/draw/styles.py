"""The colours and widths of drawn circuits: role fills, q/k/v/mlp/logits edge styles, shared / only-left /
only-right colours of a comparison, and edge width from importance."""

from __future__ import annotations

import math
from collections.abc import Mapping

from acdc_compare.types import Role

ROLE_COLORS: dict[str, str] = {
    Role.NAME_MOVER: "#7fb2e5",
    Role.BACKUP_NAME_MOVER: "#c6dcf2",
    Role.NEGATIVE_NAME_MOVER: "#f2a3a3",
    Role.S_INHIBITION: "#a6dc8e",
    Role.INDUCTION: "#f7c873",
    Role.DUPLICATE_TOKEN: "#d4b0e6",
    Role.PREVIOUS_TOKEN: "#f4e27a",
    Role.MOVER: "#8fd3cc",
    "unknown": "#eeeeee",
}
_EXTRA_ROLE_COLORS = ("#e6c9a8", "#c8c8f4", "#f7c6de", "#cfe8b9", "#bfe3f0", "#e0e0a0", "#d9b8a0")
EDGE_STYLES: dict[str, tuple[str, str]] = {  # kind -> (colour, style)
    "q": ("#1f66b3", "solid"),
    "k": ("#2a9d3a", "dashed"),
    "v": ("#d0312d", "dotted"),
    "mlp": ("#8155b8", "solid"),
    "logits": ("#444444", "solid"),
}
EDGE_KIND_NAMES: dict[str, str] = {"q": "q input", "k": "k input", "v": "v input", "mlp": "MLP input",
                                   "logits": "logits"}  # what each kind of edge feeds, in legends
COMPARISON_COLORS: dict[str, tuple[str, str]] = {  # membership -> (edge colour, node fill)
    "shared": ("#3a3a3a", "#dcdcdc"),
    "left": ("#0072b2", "#c4def2"),
    "right": ("#e08a00", "#fbe0b0"),
}
_MIN_WIDTH, _MAX_WIDTH = 0.6, 4.0


def role_palette(roles: Mapping[str, str]) -> dict[str, str]:
    """Colour per role: the known roles' own colours, then extra colours for other role names."""
    palette = dict(ROLE_COLORS)
    extra = iter(_EXTRA_ROLE_COLORS * (1 + len(roles) // len(_EXTRA_ROLE_COLORS)))
    for role in sorted(set(roles.values()) - set(palette)):
        palette[role] = next(extra)
    return palette


def edge_width(importance: float, scale: float = 1.0) -> float:
    """Edge width from an importance (`Circuit.importance`, or a sum of them) as a share of `scale`, clipped."""
    if not scale > 0 or math.isnan(importance):
        return _MIN_WIDTH
    return _MIN_WIDTH + (_MAX_WIDTH - _MIN_WIDTH) * min(1.0, importance / scale)
