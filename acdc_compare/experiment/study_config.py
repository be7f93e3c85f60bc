"""The study's settings (`StudyConfig`, checked before any model loads) and its plain-JSON files: what a rerun
must match to resume, and how every part is written and read back."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from acdc_compare.algorithms.hybrid import Ranking
from acdc_compare.backends import DEFAULT_MODEL
from acdc_compare.experiment.config import ExperimentConfig
from acdc_compare.files import atomic_write
from acdc_compare.progress import ProgressLike
from acdc_compare.tasks.base import Corruption, TaskError
from acdc_compare.tasks.registry import task_names
from acdc_compare.types import Metric

STUDY_TASKS: tuple[str, ...] = (
    "ioi", "pet-last", "pet-middle", "pet-first", "poorer", "richer", "size", "attribute", "opposites", "analogy",
    "adjective-last", "adjective-first", "verb-last", "verb-first", "verb-last-2shot", "verb-first-2shot",
    "adjective-last-2shot", "adjective-first-2shot", "colour-of-last", "colour-of-first", "colour-coloured-last",
    "colour-coloured-first", "material-of-last", "material-of-first", "greater-than")
EDGE_SHARES: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.4)
NO_MOVER_CLAIM = "answer not in the prompt"


@dataclass(frozen=True)
class StudyConfig:
    """Settings of the study. Circuits use the demo's hybrid (EAP-IG on `rank_prompts` prompts ranks the edges,
    or starts masks learned for `learn_steps` steps over `n_prompts` discovery prompts within an edge budget;
    exact ACDC tests the lowest-ranked `tested`), for every task. A circuit must keep `target` of the behaviour
    on its discovery prompts and `target_validation` on `validation_seed`'s; the budgets of `edge_shares` are
    tried as `study_frontier.frontier` says (the frontier is kept); `held_out_seed`'s prompts and the held-out
    wordings judge the chosen circuit and decide nothing."""

    model: str = DEFAULT_MODEL
    tasks: tuple[str, ...] = STUDY_TASKS
    n_eval: int = 100  # prompts per task for the accuracy table
    min_accuracy: float = 0.8  # a task answered at least this often gets a circuit (every disagreeing twin does)
    seed: int = 0  # discovery and accuracy prompts
    validation_seed: int = 2  # picks each task's budget (the demo's settings were also chosen looking at it)
    held_out_seed: int = 7  # prompts never used for any choice
    n_held_out: int = 32
    edge_shares: tuple[float, ...] = EDGE_SHARES  # budgets tried in order, as shares of the graph's edges
    target: float = 0.85  # in-sample faithfulness a circuit must reach ...
    target_validation: float = 0.8  # ... and on validation_seed's prompts; the first budget doing both is kept
    learn_from: float = 0.78  # masks are learned at the first budget only if EAP-IG's top edges at the second keep this
    tested: int = 20
    n_prompts: int = 32
    rank_prompts: int = 8  # EAP-IG ranks on these, masks learn in minibatches of this many
    learn_steps: int = 16
    steps: int = 5
    threshold: float = 0.001  # relative: a fraction of each task's gap M(empty circuit) - M(full)
    metric: Metric = Metric.KL  # what discovery minimises and faithfulness is normalised on
    corruption: Corruption = Corruption.ANSWERS  # where the task offers it (`ExperimentConfig.corruption_of`)
    ioi: str = "ioi"  # the task whose movers are "IOI's name movers"
    no_answer_in_prompt: tuple[str, ...] = ("opposites", "analogy")  # circuits, but no mover claim
    progress: ProgressLike = False

    def __post_init__(self) -> None:
        """Every setting checked before any model loads."""
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "no_answer_in_prompt", tuple(self.no_answer_in_prompt))
        unknown = [t for t in (*self.tasks, self.ioi, *self.no_answer_in_prompt) if t not in task_names()]
        if unknown:
            raise TaskError(f"unknown study task(s) {', '.join(map(repr, unknown))}; known tasks: "
                            f"{', '.join(task_names())}")
        if not self.tasks:
            raise ValueError("the study needs at least one task")
        duplicates = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
        if duplicates:
            raise ValueError(f"tasks listed twice: {', '.join(duplicates)}")
        if isinstance(self.min_accuracy, bool) or not 0.0 <= float(self.min_accuracy) <= 1.0:
            raise ValueError(f"min_accuracy must be a fraction in [0, 1], got {self.min_accuracy!r}")
        if self.held_out_seed in (self.seed, self.validation_seed):
            raise ValueError(f"held_out_seed ({self.held_out_seed}) must differ from seed ({self.seed}) and "
                             f"validation_seed ({self.validation_seed}): its prompts are never used for a choice")
        if self.tested < 0 or isinstance(self.tested, bool):
            raise ValueError(f"tested must be a whole number >= 0, got {self.tested!r}")
        shares = tuple(float(x) for x in self.edge_shares)
        if not shares or any(not 0.0 < x <= 1.0 for x in shares) or list(shares) != sorted(set(shares)):
            raise ValueError(f"edge_shares must be increasing shares of the edges in (0, 1], got {self.edge_shares!r}")
        object.__setattr__(self, "edge_shares", shares)
        for name in ("target", "target_validation", "learn_from"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must be a faithfulness in [0, 1], got {getattr(self, name)!r}")
        if self.rank_prompts > self.n_prompts:
            raise ValueError(f"rank_prompts ({self.rank_prompts}) must not exceed n_prompts ({self.n_prompts})")
        object.__setattr__(self, "corruption", Corruption(self.corruption))
        object.__setattr__(self, "metric", Metric(self.metric))
        self.experiment()

    def experiment(self, k: int = 1, ranking: Ranking = "learned") -> ExperimentConfig:
        """The demo's settings with `ranking`, an edge budget `k`, `tested` and `n_prompts` for every task."""
        names = tuple(dict.fromkeys((*self.tasks, self.ioi)))
        return ExperimentConfig(
            model=self.model, extra=(), corruption=self.corruption, metric=self.metric, method="hybrid", threshold=self.threshold,
            k=k, task_k=(), tested=self.tested, task_tested=(), functional=True,
            task_ranking=tuple((t, ranking) for t in names), learn_steps=self.learn_steps, steps=self.steps,
            n_prompts=self.rank_prompts, task_prompts=tuple((t, self.n_prompts) for t in names),
            n_eval=self.n_eval, curve=False, seed=self.seed, held_out_seed=self.validation_seed,
            n_held_out=self.n_held_out, progress=self.progress)

    def settings(self) -> dict[str, Any]:
        """What decides the study's numbers (all but `progress`), as JSON values: a rerun must match them."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "progress"}
        out["tasks"], out["no_answer_in_prompt"] = list(self.tasks), list(self.no_answer_in_prompt)
        out["edge_shares"] = list(self.edge_shares)
        out["corruption"], out["metric"] = self.corruption.value, self.metric.value
        return out


def json_value(x: Any) -> Any:
    """NaN and infinities as None: the files stay plain JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_value(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_value(v) for v in x]
    return x


def write_json(path: Path, value: Any) -> Path:
    atomic_write(path, (json.dumps(json_value(value), indent=1, allow_nan=False) + "\n").encode("utf-8"))
    return path


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it to redo that part of the study") from err


def check_settings(folder: Path, config: StudyConfig) -> None:
    """Write settings.json, or refuse to resume a study made with other settings."""
    path, settings = folder / "settings.json", json_value(config.settings())
    if path.is_file():
        before = read_json(path)
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            raise ValueError(f"{folder} holds a study made with other settings ({', '.join(changed)} differ); "
                             "use another output folder, or delete that one to start afresh")
    else:
        write_json(path, settings)
