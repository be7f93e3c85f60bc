"""Held-out wordings on the default model: does SmolLM2-135M still do every registered task when its prompts
use a template that no discovery saw?

Circuits are discovered on wording 0; a circuit's faithfulness on wordings 1, 2 is only meaningful where the
model does the task in them. Every registered task is built for each of its wordings (100 prompts, seed 0,
the same content in every wording) and scored by its clean accuracy (`clean_accuracy`: the correct
answer's logit above the wrong one's; Greater-Than: P(later years) > P(not later); induction: top-1), with
its 95% Wilson interval.

Writes benchmarks/results/wordings_cpu.json (or _cuda) and docs/wordings_table.md.

    python benchmarks/bench_wordings.py [--n 100] [--tasks ioi pet-last] [--wordings 2] [--resume] [--table-only]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, save  # noqa: E402

from acdc_compare.stats import Proportion  # noqa: E402
from acdc_compare.tasks.evaluate import clean_accuracy  # noqa: E402
from acdc_compare.tasks.registry import TASKS, make_task  # noqa: E402

SEED = 0
TABLE = Path(__file__).resolve().parent.parent / "docs" / "wordings_table.md"
HELD_OUT_GOAL = 0.8  # the accuracy a held-out wording should keep, where wording 0 reaches it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--tasks", nargs="*", default=None, help="default: every registered task")
    parser.add_argument("--wordings", nargs="*", type=int, default=None,
                        help="only these wordings of each task (default: all it offers)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows of the existing results file and measure only the missing ones")
    parser.add_argument("--table-only", action="store_true", help="rewrite docs/wordings_table.md from the results")
    args = parser.parse_args()
    if args.table_only:
        TABLE.write_text(markdown(_done(torch.device("cpu")), args.n))
        return
    import acdc_compare
    from acdc_compare.backends import tokenizer

    model = acdc_compare.load_model()
    tok = tokenizer(model)
    device = model.W_E.device
    names = args.tasks or list(TASKS)
    unknown = [name for name in names if name not in TASKS]
    if unknown:
        raise SystemExit(f"unknown tasks {unknown}; registered: {', '.join(TASKS)}")
    wanted = (lambda w: True) if args.wordings is None else (lambda w: w in args.wordings)
    rows = [r for r in _done(device)
            if r["n"] == args.n and (args.resume or r["task"] not in names or not wanted(r["wording"]))]
    done = {(r["task"], r["wording"]) for r in rows}
    path = None
    for name in names:
        spec = TASKS[name]
        for wording in range(spec.wordings + 1):
            if (name, wording) in done or not wanted(wording):
                continue
            task = make_task(name, tok, n=args.n, seed=SEED, wording=wording)
            start = time.perf_counter()
            with torch.no_grad():
                accuracy = clean_accuracy(model, task)
            p = Proportion(accuracy, task.n_prompts)
            rows.append({"task": name, "wording": wording, "role": "discovery" if wording == 0 else "held-out",
                         "example": task.prompts[0] if task.prompts else "", "n": task.n_prompts,
                         "accuracy": accuracy, "low": p.low, "high": p.high,
                         "seconds": round(time.perf_counter() - start, 1)})
            print(f"{name:<24} wording {wording}: {p.short()}", flush=True)
            path = _write(rows, args.n, device)  # after every row: a run cut short keeps what it measured
    print(f"wrote {path} and {TABLE}")


def _done(device: torch.device) -> list[dict]:
    path = RESULTS / f"wordings_{'cuda' if device.type == 'cuda' else 'cpu'}.json"
    return json.loads(path.read_text())["rows"] if path.exists() else []


def _write(rows: list[dict], n: int, device: torch.device) -> Path:
    order = {name: i for i, name in enumerate(TASKS)}
    rows.sort(key=lambda r: (order.get(r["task"], len(order)), r["wording"]))
    path = save("wordings", device, {
        "model": "SmolLM2-135M (acdc_compare.load_model())", "n": n, "seed": SEED,
        "wordings": "0 = the prompts discovery runs on; 1, 2 = held-out templates (same content, same answers)",
        "accuracy": "clean prompts: correct answer's logit above the wrong one's (Greater-Than: P(later) > "
                    "P(not later); induction: top-1); 95% Wilson interval",
        "rows": rows})
    TABLE.write_text(markdown(rows, n))
    return path


def markdown(rows: list[dict], n: int) -> str:
    """One line per task: its accuracy [95% interval] in each wording."""
    by_task: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_task.setdefault(r["task"], {})[r["wording"]] = r
    most = max((max(w) for w in by_task.values()), default=0)
    head = "| task | " + " | ".join(["wording 0 (discovery)"] + [f"wording {k} (held out)" for k in
                                                                     range(1, most + 1)]) + " |"
    lines = [
        "# Held-out wordings on SmolLM2-135M",
        "",
        f"Clean accuracy [95% Wilson interval] of every registered task, n = {n} prompts, seed {SEED}, in each "
        "wording: 0 is the template discovery runs on, 1 and 2 are held-out templates with the same content and "
        "answers (a circuit's faithfulness on them is only meaningful where the model does the task). Accuracy: "
        "the correct answer's logit above the wrong one's (Greater-Than: P(later) > P(not later); induction, "
        "single-wording: top-1). Produced by `benchmarks/bench_wordings.py`.",
        "",
        head,
        "|---" * (most + 2) + "|",
    ]
    for task, cells in by_task.items():
        shown = [Proportion(cells[k]["accuracy"], cells[k]["n"]).short() if k in cells else "-"
                 for k in range(most + 1)]
        lines.append(f"| {task} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
