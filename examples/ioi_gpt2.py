"""IOI on GPT-2 small, compared with the published circuit (Wang et al. 2022; ACDC's 1,041 ground-truth edges).

Needs GPT-2 small in the local Hugging Face cache or a reachable hub. Exact ACDC over GPT-2 small's 32,923
edges is for a GPU (`--device cuda`); on a CPU use --method hybrid.

    python examples/ioi_gpt2.py [--method acdc|hybrid] [--threshold 0.0575] [--device cuda]
"""

import argparse

from acdc_compare import ModelLoadError, discover, load_model
from acdc_compare.compare import compare_circuits, format_head_class_recovery, head_class_recovery
from acdc_compare.draw import draw_comparison
from acdc_compare.export import save_circuit
from acdc_compare.reference_circuits import IOI_HEAD_CLASSES, head_roles, ioi_ground_truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", default="hybrid", choices=["acdc", "hybrid"])
    parser.add_argument("--threshold", type=float, default=0.0575)
    parser.add_argument("--k", type=int, default=2000)
    parser.add_argument("--n-prompts", type=int, default=100)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    try:
        model = load_model("gpt2", device=args.device)
    except ModelLoadError as err:
        raise SystemExit(str(err))
    found = discover("ioi-acdc", args.threshold, model=model, method=args.method, k=args.k,
                     n_prompts=args.n_prompts, progress=True, journal="ioi_gpt2_journal.jsonl")
    reference = ioi_ground_truth(found.graph)
    cmp_ = compare_circuits(found, reference)
    print(f"found {found.n_kept} edges; reference {reference.n_kept}")
    print(f"edge precision {cmp_.edges.precision:.3f}, recall {cmp_.edges.recall:.3f}")
    print("IOI classes recovered: " + format_head_class_recovery(head_class_recovery(found.heads(), IOI_HEAD_CLASSES)))
    save_circuit(found, "ioi_gpt2.json")
    draw_comparison(found, reference, "ioi_gpt2_vs_reference.png", "found", "Wang et al.", roles=head_roles())


if __name__ == "__main__":
    main()
