"""Copy formats on the default model: which prompt formats does SmolLM2-135M answer by copying an adjective
(a colour, a mood) or a noun (a material, an animal) from the prompt, in both order-vs-meaning twins?

Every format of `acdc_compare.tasks.formats.FORMATS` (all formats tried, registered or not) is built with n
prompts per twin ("last": the queried entity was stated last, order agrees; "first": stated first, order
disagrees) and scored with `evaluate_task` (accuracy = the correct value's logit above the other value's,
with its 95% Wilson interval; default corruption "meaning" for KL). Formats were chosen on seed 0
(role "chosen-on"); the registered formats and the runners-up are measured again on seed 1 ("held-out").

Writes benchmarks/results/formats_cpu.json (or _cuda) and docs/formats_table.md.

    python benchmarks/bench_formats.py [--n 100] [--formats colour-of material-of] [--resume]
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
from acdc_compare.tasks.evaluate import evaluate_task  # noqa: E402
from acdc_compare.tasks.formats import FORMATS, REGISTERED_FORMATS, format_named, make_copy  # noqa: E402

CHOSEN_ON, HELD_OUT = 0, 1
# measured on the held-out seed too: the registered formats and the best of the others per answer kind
HELD_OUT_FORMATS = (*REGISTERED_FORMATS, "material", "mood-of", "animal-pet-of", "colour-coloured-so")
TABLE = Path(__file__).resolve().parent.parent / "docs" / "formats_table.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--formats", nargs="*", default=None, help="default: every format tried")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows of the existing results file and measure only the missing ones")
    parser.add_argument("--table-only", action="store_true", help="rewrite docs/formats_table.md from the results file")
    args = parser.parse_args()
    if args.table_only:
        TABLE.write_text(markdown(_done(torch.device("cpu")), args.n))
        return
    import acdc_compare
    from acdc_compare.backends import tokenizer

    model = acdc_compare.load_model()
    tok = tokenizer(model)
    device = model.W_E.device
    # the registered formats and the runners-up first, so a run cut short has measured those
    names = args.formats or sorted((f.name for f in FORMATS), key=lambda f: f not in HELD_OUT_FORMATS)
    rows = _done(device) if args.resume else []
    done = {(r["format"], r["seed"]) for r in rows if r["n"] == args.n}
    for name in names:
        fmt = format_named(name)
        for seed in (CHOSEN_ON, HELD_OUT) if name in HELD_OUT_FORMATS else (CHOSEN_ON,):
            if (name, seed) in done:
                continue
            row = {"format": name, "example": fmt.example(), "answer_kind": fmt.answer_kind,
                   "shots": fmt.shots, "registered": name in REGISTERED_FORMATS, "seed": seed,
                   "seed_role": "chosen-on" if seed == CHOSEN_ON else "held-out", "n": args.n}
            start = time.perf_counter()
            for ask in ("last", "first"):
                with torch.no_grad():
                    e = evaluate_task(model, make_copy(tok, n=args.n, seed=seed, fmt=fmt, ask=ask))
                p = e.accuracy_interval
                row[ask] = {"accuracy": e.accuracy, "low": p.low, "high": p.high, "n": e.n,
                            "logit_diff": e.logit_diff, "p_correct": e.p_correct, "kl_meaning": e.kl}
            row["seconds"] = round(time.perf_counter() - start, 1)
            rows.append(row)
            print(f"{name:<26} seed {seed}: last {_cell(row['last'])}  first {_cell(row['first'])}", flush=True)
            path = _write(rows, args.n, device)  # after every row: a long run keeps what it measured
    print(f"wrote {path} and {TABLE}")


def _done(device: torch.device) -> list[dict]:
    path = RESULTS / f"formats_{'cuda' if device.type == 'cuda' else 'cpu'}.json"
    return json.loads(path.read_text())["rows"] if path.exists() else []


def _write(rows: list[dict], n: int, device: torch.device) -> Path:
    path = save("formats", device, {
        "model": "SmolLM2-135M (acdc_compare.load_model())", "n_per_twin": n,
        "chosen_on_seed": CHOSEN_ON, "held_out_seed": HELD_OUT, "registered": list(REGISTERED_FORMATS),
        "twins": {"last": "queried entity stated last: word order (recency) and meaning agree",
                  "first": "queried entity stated first: word order and meaning disagree"},
        "accuracy": "correct value's logit above the other value of the prompt; 95% Wilson interval",
        "rows": rows})
    TABLE.write_text(markdown(rows, n))
    return path


def _cell(r: dict) -> str:
    return Proportion(r["accuracy"], r["n"]).short()


def markdown(rows: list[dict], n: int) -> str:
    lines = [
        "# Copy formats on SmolLM2-135M",
        "",
        f"Accuracy (correct value's logit above the other value in the prompt) [95% Wilson interval], n = {n} "
        "prompts per twin. *last*: the queried entity was stated last (word order and meaning agree); *first*: "
        "stated first (they disagree). Formats were chosen on seed 0; seed 1 is held out. Produced by "
        "`benchmarks/bench_formats.py`.",
        "",
        "| format | answer | example | seed | last (agree) | first (disagree) | registered |",
        "|---|---|---|---|---|---|---|",
    ]
    order = {f.name: i for i, f in enumerate(FORMATS)}
    for r in sorted(rows, key=lambda r: (order.get(r["format"], len(order)), r["seed"])):
        seed = f"{r['seed']} ({r['seed_role']})"
        example = r["example"].replace("\n", "\\n").replace("|", "\\|")
        lines.append(f"| {r['format']} | {r['answer_kind']} | `{example}` | {seed} | {_cell(r['last'])} | "
                     f"{_cell(r['first'])} | {'yes' if r['registered'] else ''} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
