"""A custom task from your own prompts: clean prompts, corrupted twins of the same token length, and
single-token answers. Then discover its circuit and save it.

    python examples/custom_task.py
"""

from acdc_compare import discover, load_model
from acdc_compare.export import save_circuit
from acdc_compare.tasks import evaluate_task, task_from_prompts

COUNTRIES = [("France", " Paris", "Italy", " Rome"), ("Japan", " Tokyo", "Egypt", " Cairo"),
             ("Germany", " Berlin", "Spain", " Madrid"), ("Russia", " Moscow", "China", " Beijing")]


def main() -> None:
    model = load_model()
    prompts = [f"The capital of {country} is" for country, _, _, _ in COUNTRIES]
    corrupted = [f"The capital of {other} is" for _, _, other, _ in COUNTRIES]
    task = task_from_prompts(model.tokenizer, "capitals", prompts, corrupted,
                             correct_answers=[c for _, c, _, _ in COUNTRIES],
                             wrong_answers=[w for _, _, _, w in COUNTRIES],
                             description="country -> capital; corrupted: another country")
    print(evaluate_task(model, task))
    circuit = discover(task, 0.05, model=model, method="hybrid", k=200, progress=True)
    print(circuit, circuit.metrics)
    save_circuit(circuit, "capitals.json")


if __name__ == "__main__":
    main()
