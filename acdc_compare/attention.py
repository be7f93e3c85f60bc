"""Does a head attend to the same *roles* on two analogous tasks? The analogy measure, and attention patterns
for the viewer.

Roles of the key positions, derived from a `Task` alone (`position_roles`), in priority order:
- "correct answer": the position holds the prompt's correct answer token (or, given a tokenizer, a token of
  the same text up to whitespace: 'Emma' at the start of a prompt answering ' Emma');
- "wrong answer": the same for the wrong answer;
- "correct kind": a token that is the correct answer of some other prompt of the task (pet family: the
  example family's pet; not also a wrong answer somewhere);
- "wrong kind": a token that is the wrong answer of some prompt (pet family: the other humans);
- "first token" (position 0, where many heads park attention), "scored token" (the query itself), "other".
Positions after the scored one get no role (-1). The same definitions on both tasks of a pair align them:
pet-last and pet-first hold the same names in other slots, so a head that follows the pet's meaning puts the
same attention on "correct answer" in both, and a head that follows the slot does not.

The measure, for one head at the scored position (every (prompt, scored position) is one row):
- `role_mass`: attention each role gets, per row ([rows, R], rows sum to 1 over the valid positions);
- `tv_similarity` = 1 - total variation distance between the two tasks' mean role distributions
  (1: the head spreads its attention over roles identically; 0: disjoint);
- Pearson correlation of the role masses over aligned (row, role) cells when both sets have the same rows
  (same prompts rewritten), else over the mean distributions;
- baseline: the same two numbers after permuting the role labels of the second set's positions within each
  row (`n_shuffles` times), so what the roles explain is told apart from where the head looks anyway (a head
  that attends only to the first token scores high whatever the labels).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from acdc_compare.backends.hooks import attention_patterns
from acdc_compare.graph import head_name, parse_head
from acdc_compare.progress import Bar, ProgressLike, as_progress, silent
from acdc_compare.roles.mover_score import answer_mask, token_decoder
from acdc_compare.tasks.base import Task

ROLES: tuple[str, ...] = ("correct answer", "wrong answer", "correct kind", "wrong kind", "first token",
                          "scored token", "other")
_CORRECT, _WRONG, _CORRECT_KIND, _WRONG_KIND, _FIRST, _SCORED, _OTHER = range(len(ROLES))


# ----- pure functions on tensors -----------------------------------------------------------------------
def position_roles(tokens: torch.Tensor, positions: torch.Tensor, correct: torch.Tensor, wrong: torch.Tensor,
                   decode: Callable[[int], str] | None = None) -> torch.Tensor:
    """Role index (into ROLES) of every key position for every (prompt, scored position): [N, Q, P] long,
    -1 after the scored position. `tokens` [N, P]; `positions`, `correct`, `wrong` [N, Q]."""
    tokens, positions, correct, wrong = tokens.cpu(), positions.cpu(), correct.cpu(), wrong.cpu()
    n, p = tokens.shape
    q = positions.shape[1]
    keys = torch.arange(p)[None, None, :]
    out = torch.full((n, q, p), _OTHER, dtype=torch.long)
    out[keys.expand(n, q, p) == positions[:, :, None]] = _SCORED
    out[:, :, 0] = _FIRST
    correct_pool = {int(t) for t in correct.flatten().tolist() if t >= 0}
    wrong_pool = {int(t) for t in wrong.flatten().tolist() if t >= 0}
    in_wrong = torch.isin(tokens, torch.tensor(sorted(wrong_pool) or [-2]))[:, None, :].expand(n, q, p)
    in_correct = torch.isin(tokens, torch.tensor(sorted(correct_pool) or [-2]))[:, None, :].expand(n, q, p)
    out[in_wrong] = _WRONG_KIND
    out[in_correct & ~in_wrong] = _CORRECT_KIND
    out[answer_mask(tokens, positions, wrong, decode)] = _WRONG
    out[answer_mask(tokens, positions, correct, decode)] = _CORRECT
    out[keys.expand(n, q, p) > positions[:, :, None]] = -1
    return out


def role_mass(rows: torch.Tensor, roles: torch.Tensor, n_roles: int = len(ROLES)) -> torch.Tensor:
    """Attention mass per role: rows [M, P] (attention from the scored position), roles [M, P] (-1 = no
    role, ignored) -> [M, n_roles] float64."""
    rows, roles = rows.double().cpu(), roles.cpu()
    valid = roles >= 0
    out = torch.zeros(rows.shape[0], n_roles, dtype=torch.float64)
    return out.scatter_add_(1, roles.clamp(min=0), rows * valid)


def tv_similarity(p: torch.Tensor, q: torch.Tensor) -> float:
    """1 - total variation distance between two distributions over the same roles (each renormalised)."""
    p, q = p.double() / p.double().sum(), q.double() / q.double().sum()
    return float(1.0 - 0.5 * (p - q).abs().sum())


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson correlation of two equally long vectors; NaN when either is constant."""
    x, y = x.double().flatten(), y.double().flatten()
    x, y = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    return float((x * y).sum()) / denom if denom > 0 else math.nan


def compare_masses(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(tv_similarity of the mean role distributions, Pearson over aligned cells, or over the means when the
    two sets have different numbers of rows)."""
    tv = tv_similarity(a.mean(0), b.mean(0))
    r = pearson(a, b) if a.shape == b.shape else pearson(a.mean(0), b.mean(0))
    return tv, r


def shuffle_roles(roles: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The role labels of each row's valid positions (>= 0) permuted at random; -1 positions stay."""
    out = roles.clone()
    for i in range(roles.shape[0]):
        idx = torch.nonzero(roles[i] >= 0).flatten()
        out[i, idx] = roles[i, idx[torch.randperm(len(idx), generator=generator)]]
    return out


@dataclass(frozen=True)
class Analogy:
    """One head on two aligned prompt sets: mean role distributions, similarities and their shuffled-role
    baseline (mean and standard deviation over the shuffles)."""

    head: str
    dist_a: tuple[float, ...]
    dist_b: tuple[float, ...]
    tv_similarity: float
    pearson: float
    baseline_tv: float
    baseline_tv_std: float
    baseline_pearson: float
    baseline_pearson_std: float
    n_rows: tuple[int, int]

    @property
    def tv_above_baseline(self) -> float:
        return self.tv_similarity - self.baseline_tv


def analogy(head: str, rows_a: torch.Tensor, roles_a: torch.Tensor, rows_b: torch.Tensor, roles_b: torch.Tensor,
            n_shuffles: int = 200, seed: int = 0, n_roles: int = len(ROLES)) -> Analogy:
    """The analogy measure of one head (see the module docstring): rows [M, P] and roles [M, P] per set."""
    a, b = role_mass(rows_a, roles_a, n_roles), role_mass(rows_b, roles_b, n_roles)
    tv, r = compare_masses(a, b)
    gen = torch.Generator().manual_seed(seed)
    base = [compare_masses(a, role_mass(rows_b, shuffle_roles(roles_b, gen), n_roles)) for _ in range(n_shuffles)]
    tvs = torch.tensor([t for t, _ in base], dtype=torch.float64)
    rs = torch.tensor([x for _, x in base if not math.isnan(x)], dtype=torch.float64)
    std = (lambda t: float(t.std()) if len(t) > 1 else math.nan)
    return Analogy(head, tuple(a.mean(0).tolist()), tuple(b.mean(0).tolist()), tv, r,
                   float(tvs.mean()) if len(tvs) else math.nan, std(tvs),
                   float(rs.mean()) if len(rs) else math.nan, std(rs), (int(a.shape[0]), int(b.shape[0])))


# ----- on a model ------------------------------------------------------------------------------------
@torch.no_grad()
def scored_rows(model: Any, task: Task, heads: Sequence[str], chunk: int = 16,
                bar: Bar | None = None) -> dict[str, torch.Tensor]:
    """Each head's attention from every scored position: head -> [N * Q, P] (prompt-major), float64. One
    forward per `chunk` prompts, one `bar` unit each (`n_chunks`)."""
    pos = task.positions
    parts: dict[str, list[torch.Tensor]] = {h: [] for h in heads}
    bar = bar or silent("", 0)
    for i in range(0, task.n_prompts, chunk):
        pat = attention_patterns(model, task.clean[i:i + chunk]).double().cpu()  # [L, n, H, P, P]
        idx = pos[i:i + chunk].cpu()
        for h in heads:
            layer, head = parse_head(h)
            m = pat[layer, :, head]  # [n, P, P]
            parts[h].append(m.gather(1, idx[:, :, None].expand(-1, -1, m.shape[-1])).reshape(-1, m.shape[-1]))
        bar.update(1)
    return {h: torch.cat(v) for h, v in parts.items()}


def n_chunks(task: Task, chunk: int = 16) -> int:
    """Forwards `scored_rows` makes on `task`."""
    return -(-task.n_prompts // chunk)


def task_roles(model: Any, task: Task) -> torch.Tensor:
    """`position_roles` of a task with the model's tokenizer for text matching: [N * Q, P]."""
    roles = position_roles(task.clean, task.positions, task.correct, task.wrong, token_decoder(model))
    return roles.reshape(-1, roles.shape[-1])


def check_heads(model: Any, heads: Sequence[str]) -> list[str]:
    """The head names, checked against the model's shape; ValueError naming a bad one ('a9.h9' is the form)."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    for h in heads:
        try:
            layer, head = parse_head(h)
        except ValueError:
            raise ValueError(f"{h!r} is not a head name; heads look like 'a9.h9' (layer 9, head 9)") from None
        if not (0 <= layer < n_layers and 0 <= head < n_heads) or head_name(layer, head) != h:
            raise ValueError(f"{h!r} is not a head of this model ({n_layers} layers x {n_heads} heads)")
    return list(heads)


def head_analogies(model: Any, task_a: Task, task_b: Task, heads: Sequence[str], n_shuffles: int = 200,
                   seed: int = 0, progress: ProgressLike = None) -> list[Analogy]:
    """The analogy measure of each head between two tasks (the same prompts rewritten, e.g. pet-last and
    pet-first built with the same seed). `progress`: one bar, a unit per forward and per head."""
    heads = check_heads(model, heads)
    bar = as_progress(progress)("attention analogy", n_chunks(task_a) + n_chunks(task_b) + len(heads), unit="step")
    try:
        rows_a, rows_b = scored_rows(model, task_a, heads, bar=bar), scored_rows(model, task_b, heads, bar=bar)
        roles_a, roles_b = task_roles(model, task_a), task_roles(model, task_b)
        out = []
        for h in heads:
            out.append(analogy(h, rows_a[h], roles_a, rows_b[h], roles_b, n_shuffles, seed))
            bar.update(1)
        return out
    finally:
        bar.close()


def top_answer_heads(model: Any, task: Task, k: int = 10, progress: ProgressLike = None) -> list[str]:
    """The k heads with the most attention from the scored position to the correct answer's token
    (`progress`: one bar over the forwards)."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    all_heads = [head_name(layer, h) for layer in range(n_layers) for h in range(n_heads)]
    bar = as_progress(progress)("top heads", n_chunks(task), unit="forward")
    try:
        rows = scored_rows(model, task, all_heads, bar=bar)
    finally:
        bar.close()
    roles = task_roles(model, task)
    att = {h: float(role_mass(rows[h], roles)[:, _CORRECT].mean()) for h in all_heads}
    return sorted(all_heads, key=lambda h: -att[h])[:k]


def analogy_rows(results: Sequence[Analogy]) -> list[dict[str, Any]]:
    """Table rows (plain values; NaN as None, so strict JSON can hold them) for reports, the CLI and JSON."""
    def plain(x: Any) -> Any:
        if isinstance(x, float):
            return x if math.isfinite(x) else None
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x

    out = []
    for r in results:
        row = asdict(r)
        row["dist_a"] = dict(zip(ROLES, r.dist_a))
        row["dist_b"] = dict(zip(ROLES, r.dist_b))
        row["tv_above_baseline"] = r.tv_above_baseline
        out.append(plain(row))
    return out


def format_analogy_table(results: Sequence[Analogy], name_a: str, name_b: str) -> str:
    """Plain-text table: per head, attention to the correct answer on each task, the two similarities and
    their shuffled-role baselines."""
    head = (f"{'head':<9} {'->correct ' + name_a:>20} {'->correct ' + name_b:>20} {'1-TV':>6} {'base':>6} "
            f"{'pearson':>8} {'base':>6}")
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.head:<9} {r.dist_a[_CORRECT]:>20.3f} {r.dist_b[_CORRECT]:>20.3f} {r.tv_similarity:>6.3f} "
                     f"{r.baseline_tv:>6.3f} {r.pearson:>8.3f} {r.baseline_pearson:>6.3f}")
    lines.append("1-TV: 1 - total variation distance between the mean role distributions at the scored position; "
                 "pearson: over aligned (prompt, role) cells; base: the same with role labels shuffled within "
                 f"each prompt. Roles: {', '.join(ROLES)}.")
    return "\n".join(lines)


# ----- attention patterns for the viewer --------------------------------------------------------------
def encode_pattern(pattern: torch.Tensor) -> str:
    """A causal [P, P] pattern's lower triangle (row by row, j <= i), quantised to bytes 0-255, as base64."""
    p = pattern.shape[0]
    i, j = torch.tril_indices(p, p)
    values = (pattern.double().cpu()[i, j].clamp(0, 1) * 255).round().to(torch.uint8)
    return base64.b64encode(bytes(values.tolist())).decode("ascii")


def decode_pattern(text: str, p: int) -> torch.Tensor:
    """Inverse of `encode_pattern` (to 1/255): [P, P] float64, zero above the diagonal."""
    values = torch.tensor(list(base64.b64decode(text)), dtype=torch.float64) / 255
    out = torch.zeros(p, p, dtype=torch.float64)
    i, j = torch.tril_indices(p, p)
    out[i, j] = values
    return out


def _token_texts(model: Any, ids: Sequence[int]) -> list[str]:
    tok = getattr(model, "tokenizer", None)
    return [str(tok.decode([int(t)])) if tok is not None else f"#{int(t)}" for t in ids]


@torch.no_grad()
def viewer_attention(model: Any, tasks: Sequence[Task], heads: Sequence[str], n_prompts: int = 2,
                     analogies: Sequence[Analogy] = ()) -> dict[str, Any]:
    """Attention patterns of `heads` on the first `n_prompts` prompts of each task (twins side by side in the
    viewer), with token texts, scored positions and key roles, ready for `viewer_data(attention=...)`."""
    out_tasks, patterns = [], {h: [] for h in heads}
    for task in tasks:
        sub = task.subset(min(n_prompts, task.n_prompts))
        pat = attention_patterns(model, sub.clean).double().cpu()
        roles = position_roles(sub.clean, sub.positions, sub.correct, sub.wrong, token_decoder(model))
        prompts = []
        for i in range(sub.n_prompts):
            scored = int(sub.positions[i, 0])
            length = scored + 1
            prompts.append({"tokens": _token_texts(model, sub.clean[i, :length].tolist()), "scored": scored,
                            "roles": [ROLES[r] for r in roles[i, 0, :length].tolist()]})
        out_tasks.append({"name": task.name, "prompts": prompts})
        for h in heads:
            layer, head = parse_head(h)
            patterns[h].append([encode_pattern(pat[layer, i, head, :p["scored"] + 1, :p["scored"] + 1])
                                for i, p in enumerate(prompts)])
    return {"tasks": out_tasks, "patterns": patterns,
            "analogy": {r.head: {"tv_similarity": r.tv_similarity, "pearson": r.pearson, "baseline_tv": r.baseline_tv,
                                 "baseline_pearson": r.baseline_pearson, "dist_a": list(r.dist_a),
                                 "dist_b": list(r.dist_b)} for r in analogies},
            "roles": list(ROLES)}


__all__ = ["Analogy", "ROLES", "analogy", "analogy_rows", "check_heads", "compare_masses", "decode_pattern", "encode_pattern",
           "format_analogy_table", "head_analogies", "pearson", "position_roles", "role_mass", "scored_rows",
           "shuffle_roles", "task_roles", "top_answer_heads", "tv_similarity", "viewer_attention"]
