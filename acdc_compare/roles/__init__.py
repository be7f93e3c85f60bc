"""Head roles on any model: the IOI head classes (Wang et al. 2022) measured, not looked up.

`score_heads(model, task)` gives every head five scores on the task's prompts (`HeadScores`), and
`assign_roles` turns them into IOI role names with relative thresholds (`RoleThresholds`), so the IOI
comparison also works where GPT-2 small (whose roles are in `reference_circuits`) cannot be loaded.

Modules: `head_scores` (the scores' value), `scoring` (`score_heads` and the scores' definitions), `patterns`
(previous-token, duplicate-token, induction), `logit_attribution` (direct logit attribution), `mover_score`
(attention to the answer x direct logit attribution), `s_inhibition` (ablation effects on the movers'
attention), `assign` (scores -> roles), `across_tasks` (are another task's movers IOI's name movers?). The role
tables are printed from `acdc_compare.role_tables`.
"""

from acdc_compare.roles.across_tasks import MoverComparison, compare_movers, spearman
from acdc_compare.roles.assign import (
    ROLE_PRIORITY,
    MoverSet,
    RoleThresholds,
    assign_roles,
    both_movers,
    find_movers,
    movers_of,
)
from acdc_compare.roles.head_scores import SCORE_NAMES, HeadScores
from acdc_compare.roles.logit_attribution import direct_head_contributions
from acdc_compare.roles.mover_score import answer_mask, token_decoder
from acdc_compare.roles.s_inhibition import AblationKind, query_patched_attention
from acdc_compare.roles.scoring import score_heads

__all__ = ["ROLE_PRIORITY", "SCORE_NAMES", "AblationKind", "HeadScores", "MoverComparison", "MoverSet", "RoleThresholds",
           "answer_mask", "assign_roles", "both_movers", "compare_movers", "direct_head_contributions", "find_movers", "movers_of",
           "query_patched_attention",
           "score_heads", "spearman", "token_decoder"]
