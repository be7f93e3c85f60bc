"""The discovery method's flags: --method and one flag per option of the registry's options classes, and the
chosen method's options built from the flags given."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

from acdc_compare.algorithms.registry import ALGORITHMS, make_options
from acdc_compare.cli.common import add_metric_and_ablation, add_no_direct

_CLI_DEFAULTS = {"journal": "TASK_METHOD.journal.jsonl in --out, removed once the circuit is saved",
                 "threshold": "none; required, except eap/eap-ig with --top-n",
                 "top_n": "none; or --threshold", "max_batch": "64 on a GPU, 1 on a CPU", "k": "all edges",
                 "max_tests": "no limit"}


def add_method_args(p: argparse.ArgumentParser, exclude: frozenset[str] = frozenset()) -> None:
    """--method, --metric, --ablation, --no-direct and the method options' flags (less `exclude`)."""
    p.add_argument("--method", default="acdc", choices=list(ALGORITHMS),
                   help="; ".join(f"{s.name}: {s.summary}" for s in ALGORITHMS.values()))
    add_metric_and_ablation(p)
    add_no_direct(p)
    _option_args(p, exclude)


def _cli_fields(exclude: frozenset[str]) -> dict[str, list[tuple[str, dataclasses.Field, Any]]]:
    """Option name -> [(method, field, its type)] over every registered method's command-line options."""
    out: dict[str, list[tuple[str, dataclasses.Field, Any]]] = {}
    for spec in ALGORITHMS.values():
        hints = typing.get_type_hints(spec.options)
        for f in spec.option_fields():
            if f.metadata.get("cli", True) and f.name not in exclude:
                out.setdefault(f.name, []).append((spec.name, f, hints[f.name]))
    return out


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _option_args(p: argparse.ArgumentParser, exclude: frozenset[str]) -> None:
    """One flag per method option (from the registry's options classes); absent flags keep the method's
    default."""
    for name, uses in _cli_fields(exclude).items():
        _, f, hint = uses[0]
        helps = dict.fromkeys(u[1].metadata.get("help", "") for u in uses)
        methods = ", ".join(u[0] for u in uses)
        text = f"[{methods}] " + "; ".join(h for h in helps if h)
        if name in _CLI_DEFAULTS:
            text = text.split(" (None: ")[0] + f" (default: {_CLI_DEFAULTS[name]})"
        else:
            text += f" (default: {'none' if f.default is None else f.default})"
        kwargs: dict[str, Any] = {"dest": f"opt_{name}", "default": argparse.SUPPRESS, "help": text}
        optional = typing.get_origin(hint) in (typing.Union, types.UnionType)
        kind = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
        if kind is bool:
            p.add_argument(_flag(f), action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if typing.get_origin(kind) is typing.Literal:
            kwargs["choices"] = list(typing.get_args(kind))
        else:
            kwargs["type"] = kind if kind in (int, float) else str
            kwargs["metavar"] = name.upper()
        p.add_argument(_flag(f), **kwargs)


def method_options(args: argparse.Namespace, exclude: frozenset[str] = frozenset(), **extra: Any) -> Any:
    """The chosen method's options from the flags given; a flag another method takes is refused."""
    cli_fields = _cli_fields(exclude)
    given = {name: getattr(args, f"opt_{name}") for name in cli_fields if hasattr(args, f"opt_{name}")}
    fields = option_names(args.method)
    wrong = [name for name in given if name not in fields]
    if wrong:
        flags = ", ".join(_flag(cli_fields[n][0][1]) for n in wrong)
        raise ValueError(f"{flags} does not apply to --method {args.method}")
    if args.method == "eap" and getattr(args, "metric", None) is not None:
        from acdc_compare.algorithms.eap import check_eap_metric

        check_eap_metric(args.metric)  # refused before the model loads
    from acdc_compare.api import check_candidates

    options = make_options(args.method, **{**given, **extra})
    check_candidates(options, "--k")
    return options


def option_names(method: str) -> set[str]:
    """The names of a registered method's options."""
    return {f.name for f in ALGORITHMS[method].option_fields()}


def progress_option(args: argparse.Namespace) -> dict[str, bool]:
    """progress=... for the methods that show a progress bar (on a terminal only: acdc_compare.progress)."""
    return {"progress": not args.quiet} if "progress" in option_names(args.method) else {}
