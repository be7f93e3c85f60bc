"""The one algorithm interface: a frozen options dataclass that validates itself, and a function
`run(problem, options) -> Circuit`, registered together as an `AlgorithmSpec` (see `algorithms.registry`).

Also the evaluator seam greedy ACDC talks to instead of the patching engine (`Evaluator`; `Problem`
implements it)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import torch

from acdc_compare.circuit import Circuit, check_selection
from acdc_compare.graph import Graph

O = TypeVar("O")


class Evaluator(Protocol):
    """A model + task as greedy ACDC sees it: the metric of circuits (bool masks [K, n_edges] -> float64
    [K], lower = closer to the full model), evaluated in full or restarted at a receiver's stage from a
    checkpointed run."""

    @property
    def graph(self) -> Graph: ...

    @property
    def n_stages(self) -> int: ...

    @property
    def default_batch(self) -> int: ...

    def stage(self, receiver: int) -> int: ...

    def evaluate(self, kept: torch.Tensor) -> torch.Tensor: ...

    @property
    def metric_ends(self) -> tuple[float, float]: ...

    def checkpoint(self, kept: torch.Tensor) -> Any: ...

    def evaluate_and_checkpoint(self, kept: torch.Tensor) -> tuple[float, Any]: ...

    def evaluate_from(self, checkpoint: Any, stage: int, kept: torch.Tensor) -> torch.Tensor: ...

    def fingerprint(self) -> dict[str, Any]: ...

    def run_settings(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class AlgorithmSpec(Generic[O]):
    """A registered discovery method: its name, options class, runner and a one-line summary."""

    name: str
    options: type[O]
    run: Callable[[Any, O], Circuit]
    summary: str

    def option_fields(self) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(self.options)  # type: ignore[arg-type]


def option(default: Any = None, help: str = "", *, cli: bool = True, flag: str | None = None) -> Any:
    """A field of an options dataclass, with what the command line shows for it (`cli=False`: Python
    only; `flag`: the CLI flag when it differs from --field-name)."""
    return dataclasses.field(default=default, metadata={"help": help, "cli": cli, "flag": flag})


def check_threshold(threshold: Any) -> float:
    """ACDC's tau: a finite number >= 0."""
    try:
        tau = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number, got {threshold!r}") from None
    if math.isnan(tau) or math.isinf(tau) or tau < 0:
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    return tau
