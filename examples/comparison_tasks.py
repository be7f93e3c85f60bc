"""Comparison prompts on the default model: do they use IOI's name movers, and do they read meaning or order?

Scores every head's roles on IOI, finds each comparison task's mover heads and compares them with IOI's name
movers, then discovers the pet-family circuit with the pet last and with the pet first (the order-vs-meaning
control) and compares the two circuits.

    python examples/comparison_tasks.py
"""

from acdc_compare import load_model
from acdc_compare.compare import compare_circuits
from acdc_compare.api import prepare, run_method
from acdc_compare.draw import draw_comparison
from acdc_compare.experiment import task_threshold
from acdc_compare.roles import assign_roles, compare_movers, score_heads
from acdc_compare.tasks import format_tasks_table, make_task, tasks_table


def main() -> None:
    model = load_model()
    tok = model.tokenizer
    names = ["ioi", "pet-last", "pet-first", "poorer", "richer", "size"]
    print(format_tasks_table(tasks_table(model, names=names, n=40)))

    ioi_scores = score_heads(model, make_task("ioi", tok, n=32))
    print("IOI roles:", assign_roles(ioi_scores))
    for name in names[1:]:
        other = score_heads(model, make_task(name, tok, n=32), s_inhibition=False)
        print(f"{name}: {compare_movers(ioi_scores, other).verdict}")

    circuits = {}
    for name in ("pet-last", "pet-first"):
        problem = prepare(name, model=model, n_prompts=16)
        circuits[name] = run_method(problem, "hybrid", task_threshold(problem, 0.01), k=250, progress=True)
        print(name, circuits[name])
    cmp_ = compare_circuits(circuits["pet-first"], circuits["pet-last"])
    print(f"pet-first vs pet-last: head Jaccard {cmp_.heads.jaccard:.2f}, edge Jaccard {cmp_.edges.jaccard:.2f}")
    draw_comparison(circuits["pet-last"], circuits["pet-first"], "pet_last_vs_first.png", "pet last", "pet first")


if __name__ == "__main__":
    main()
