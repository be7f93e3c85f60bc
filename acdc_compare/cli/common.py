"""The exit codes and the flags several subcommands share, each defined once, with what those flags describe
(the prepared problem, a published reference circuit)."""

from __future__ import annotations

import argparse
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_MODEL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command ended by Ctrl-C
HELP_FORMAT = argparse.ArgumentDefaultsHelpFormatter
DEFAULT_MODEL = "smollm2-135m"

MODEL_HELP = ("'smollm2-135m' (offline default; a Q4_1 GGUF dequantized to float32), a Hugging Face id such as "
              "'gpt2', a local HF directory, or a Llama-family .gguf file")
TASK_HELP = ("a registered task (`acdc-compare tasks --list`) or a prompts file: .jsonl or .csv with the columns "
             "prompt, corrupted, answer, wrong answer (answers with their leading space, e.g. ' Mary')")
METRIC_HELP = "kl: KL(full model || circuit) at the scored positions; logit_diff: the negated logit difference"
ABLATION_HELP = "what a removed edge carries: the sender's output on the corrupted prompt, zero, or its mean"
REFERENCES = ["ioi", "greater-than"]


def add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_out(p: argparse.ArgumentParser, default: str | None, text: str) -> None:
    p.add_argument("--out", default=default, help=text)


def add_common(p: argparse.ArgumentParser, task: bool = True) -> None:
    """--model, the task flags (with `task`), --device and --quiet, in that order."""
    add_model(p)
    if task:
        p.add_argument("--task", default="ioi", help=TASK_HELP)
        p.add_argument("--n-prompts", type=int, default=16, help="prompts used for discovery")
        p.add_argument("--seed", type=int, default=0, help="seed of the task's prompt generator")
        p.add_argument("--corruption", default=None, choices=["meaning", "answers"],
                       help="which corrupted prompts: meaning (the information that picks the answer removed) "
                            "or answers (candidate answers replaced by fresh words); None: the task's own")
    p.add_argument("--device", default=None, help="cpu or cuda; None: cuda when available")
    add_quiet(p)


def add_max_memory(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-memory", default=None,
                   help="memory the run may hold beyond the weights, e.g. 24GiB or 80GB; batches are chosen to "
                        "fit it and a run that cannot fit is refused before any activation is computed, naming "
                        "the prompt count that fits. None: what the device has free")


def add_metric_and_ablation(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metric", default="kl", choices=["kl", "logit_diff"], help=METRIC_HELP)
    p.add_argument("--ablation", default="corrupted", choices=["corrupted", "zero", "mean"], help=ABLATION_HELP)


def add_no_direct(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-direct", action="store_true", help="graph without direct q/k/v edges")


def add_threshold_scale(p: argparse.ArgumentParser, flag: str) -> None:
    """--threshold-scale: how `flag` (--threshold / --thresholds) is read, as a sweep spec's threshold_scale."""
    p.add_argument("--threshold-scale", default="absolute", choices=["absolute", "relative"],
                   help=f"how {flag} is read: absolute, in the metric's own units (KL in nats); relative, a "
                        "fraction of the task's gap M(empty) - M(full) = KL(full || empty circuit), as the demo "
                        f"and sweep specs use it (e.g. {flag} 0.001 --threshold-scale relative)")


def add_reference(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--reference", choices=REFERENCES, default=None, help=text)


def prepare_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """`prepare`'s model, metric, ablation, graph, device and memory settings from the flags (not the task's)."""
    return dict(model=args.model, metric=args.metric, ablation=args.ablation, include_direct=not args.no_direct,
                device=args.device, corruption=args.corruption, max_memory=getattr(args, "max_memory", None),
                positions=getattr(args, "positions", "all"))


def problem_from_args(args: argparse.Namespace, grad: bool = False, task: Any = None) -> Any:
    """The prepared problem the task/model/metric flags describe (`grad`: sized for a differentiable run;
    `task`: these prompts instead of --task's, e.g. the rows a held-out split leaves)."""
    from acdc_compare.api import prepare

    return prepare(args.task if task is None else task, model=args.model, metric=args.metric, ablation=args.ablation,
                   include_direct=not args.no_direct, n_prompts=args.n_prompts, seed=args.seed,
                   device=args.device, corruption=args.corruption, max_memory=getattr(args, "max_memory", None),
                   grad=grad, positions=getattr(args, "positions", "all"))


def reference_circuit(name: str, graph: Any) -> Any:
    """The published circuit --reference names, on `graph`."""
    from acdc_compare.reference_circuits import greater_than_ground_truth, ioi_ground_truth

    return ioi_ground_truth(graph) if name == "ioi" else greater_than_ground_truth(graph)
