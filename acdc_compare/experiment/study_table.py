"""The study's tables: the notes' table (plain text, Markdown for the README, the report's first section), the
frontier of budgets each task tried, and the span reads of IOI and of each order-vs-meaning pair."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from acdc_compare.experiment.study_config import StudyConfig
from acdc_compare.fmt import num
from acdc_compare.report import KeyValues, Table, Text
from acdc_compare.roles.assign import MoverSet
from acdc_compare.span_reads import READ_RULE, SpanReads, ioi_story, pair_text
from acdc_compare.stats import Proportion
from acdc_compare.tasks.registry import ORDER_MEANING_PAIRS

NOTES_COLUMNS: tuple[str, ...] = (
    "task", "answer kind", "accuracy [95% CI]", "order vs meaning", "circuit edges [budget]",
    "faithfulness in-sample / validation / held-out", "held-out wordings", "movers", "shared with IOI's name movers [chance]")
NOTES_TITLE = "The table of the notes"


def span_read_texts(rows: dict[str, dict[str, Any]], ioi: str) -> list[str]:
    """IOI's span reads against the known story, then each order-vs-meaning pair whose twins both have them."""
    found = {t: SpanReads.from_dict(r["span_reads"]) for t, r in rows.items() if r.get("span_reads")}
    texts = [ioi_story(found[ioi])] if ioi in found else []
    return texts + [pair_text(p, found[p.agree_task], found[p.disagree_task]) for p in ORDER_MEANING_PAIRS
                    if p.agree_task in found and p.disagree_task in found]


def notes_rows(rows: dict[str, dict[str, Any]], ioi: str) -> list[list[str]]:
    """The notes' table: one row per task, cells as text (`NOTES_COLUMNS`)."""
    out = []
    for name, r in rows.items():
        accuracy = Proportion(r["accuracy"], r["n_prompts"]).short()
        has = r.get("circuit") is not None
        faith = " / ".join(num(r[k], fixed=2) if r[k] is not None else "-" for k in
                           ("faithfulness", "validation_faithfulness", "held_out_faithfulness")) if has else "-"
        if not has:
            movers = shared = "-"
        elif r["movers"] is None:
            movers = shared = r["mover_note"]
        else:
            movers = MoverSet(name, tuple(r["movers"]), tuple(r["borderline"])).describe()
            shared = "(these are IOI's)" if name == ioi else \
                f"{', '.join(r['shared_with_ioi']) or 'none'} [{r['chance']:.2f}]"
        out.append([name, r["answer_kind"], accuracy, r["order_vs_meaning"] or "-",
                    _edges_cell(r) if has else f"- ({r['no_circuit']})", faith, _wordings_cell(r) if has else "-",
                    movers, shared])
    return out


def _wordings_cell(r: dict[str, Any]) -> str:
    """Faithfulness on each held-out wording, or '-' for a single-wording task."""
    found = r.get("wording_faithfulness") or {}
    return " / ".join(num(f, fixed=2) if f is not None else "-" for f in found.values()) or "-"


def _edges_cell(r: dict[str, Any]) -> str:
    """Edges kept and the budget that found them; a budget short of the targets says so."""
    short = "" if r["meets_targets"] else ", targets not reached"
    return f"{r['edges']:,} [{r['budget_share']:.0%}{short}]"


def format_notes_table(rows: Sequence[Sequence[str]]) -> str:
    """The notes' table as plain text, columns padded to their widest cell."""
    table = [list(NOTES_COLUMNS), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(NOTES_COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def notes_markdown(results: dict[str, Any]) -> str:
    """The notes' table of a results JSON (`study_<cpu|cuda>.json`) as a Markdown table, for the README: the
    same cells as the report's."""
    rows = notes_rows(results["tasks"], results["settings"]["ioi"])

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(NOTES_COLUMNS) + " |", "|" + "---|" * len(NOTES_COLUMNS)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _frontier_rows(name: str, row: dict[str, Any]) -> list[list[Any]]:
    """A task's frontier as report rows: its circuits, then EAP-IG's top-k circuits where they were measured."""
    found = [[name, f"{s['edge_share']:.0%}", f"hybrid, {s['ranking']} ranking", s["edges"], s["faithfulness"],
              s["validation_faithfulness"], s["seconds"]] for s in row.get("frontier") or ()]
    return found + [[name, f"{s['edge_share']:.0%}", "EAP-IG's top k alone", s["k"], s["faithfulness"],
                     s["validation_faithfulness"], None] for s in row.get("eap_ig_frontier") or ()]


def report_sections(config: StudyConfig, rows: dict[str, dict[str, Any]], table_rows: list[list[str]],
                     total: float) -> list[Any]:
    how = (f"Accuracy: correct beats wrong answer on {config.n_eval} clean prompts of seed {config.seed}, with its "
           f"95% Wilson interval. A task answered >= {config.min_accuracy:.0%} gets a circuit, and so does the "
           "disagreeing twin of every order-vs-meaning pair whose agreeing twin is. Circuits: the demo's hybrid "
           f"(EAP-IG on {config.rank_prompts} prompts ranks the edges, or starts masks learned for "
           f"{config.learn_steps} steps over {config.n_prompts} prompts within an edge budget; exact ACDC tests the "
           f"lowest {config.tested}). A circuit must keep {config.target:.2f} of the behaviour on its discovery "
           f"prompts and {config.target_validation:.2f} on {config.n_held_out} validation prompts of seed "
           f"{config.validation_seed}. EAP-IG's top-k circuits at {', '.join(f'{x:.0%}' for x in config.edge_shares)} "
           "of the edges (measured up to the first meeting both targets) name the smallest budget where they "
           "meet both (else the largest), and the hybrid "
           "runs there ranked by EAP-IG, then with learned masks if that misses; below it, masks are learned at "
           f"{config.edge_shares[0]:.0%} where EAP-IG's top edges at the next budget keep >= {config.learn_from:.2f} "
           "on both prompt sets. The first "
           "circuit meeting both targets is kept "
           "(else the one best on validation). Faithfulness is normalised (KL): "
           f"in-sample on the {config.n_prompts} discovery prompts (seed {config.seed}), validation (seed "
           f"{config.validation_seed}, which chose the budget), held-out on {config.n_held_out} prompts of seed "
           f"{config.held_out_seed}, used for no choice, and on the same seed's prompts in each held-out wording "
           "(templates discovery never ran on). Movers: heads on the circuit's kept paths "
           "passing the one mover rule; chance is the overlap with IOI's name movers two random sets of those "
           f"sizes would have. Tasks whose answer is not in the prompt ({', '.join(config.no_answer_in_prompt)}) "
           "get no mover claim.")
    seconds = [[t, r.get("reason") or r.get("no_circuit"), r.get("seconds")] for t, r in rows.items()]
    reads = span_read_texts(rows, config.ioi)
    reads_how = ("Per span S, the drop in the task's logit difference (full model minus a circuit that keeps every "
                 "span edge but those into the k and v inputs of the movers' key-value groups at S), mean over "
                 "the discovery prompts with its 95% bootstrap interval; a key-value group is shared by several "
                 f"query heads, all blinded alike; {READ_RULE}.")
    frontier_rows = [row for t, r in rows.items() for row in _frontier_rows(t, r)]
    return [Table(NOTES_TITLE, NOTES_COLUMNS, table_rows), Text("How the table was made", how),
            Table("Each budget tried (the frontier)", ["task", "budget", "circuit", "edges", "in-sample", "validation",
                                                       "seconds"], frontier_rows),
            Table("Why each task has a circuit, and its seconds", ["task", "circuit", "seconds"], seconds),
            Text("From which span the movers read the answer", "\n\n".join([reads_how, *reads])),
            KeyValues("Settings", [*config.settings().items(), ("total seconds", total)])]
