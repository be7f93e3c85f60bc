"""A sweep's specification: the grid of models x tasks x corruptions x methods x thresholds x prompt seeds, read
from a TOML file (or a mapping), validated before anything runs, and expanded into jobs with stable ids.

    models = ["smollm2-135m"]
    tasks = ["ioi", "pet-last"]
    corruptions = ["default"]          # "default" (each task's own), "meaning", "answers"
    methods = ["eap-ig"]
    thresholds = [0.01, 0.02]
    threshold_scale = "relative"      # or "absolute" (the metric's own units)
    seeds = [0, 1, 2]                 # prompt seeds
    n_prompts = 16

    [options.eap-ig]                  # per-method options, as `discover` takes them
    steps = 5

A job's id is readable and content-addressed: the task, corruption, method, threshold and seed, then a hash
of every setting that changes its result, so a rerun of the same spec finds its jobs again and a changed
setting never reuses an old result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from acdc_compare.algorithms.eap import check_eap_metric
from acdc_compare.algorithms.registry import algorithm, make_options
from acdc_compare.backends import DEFAULT_MODEL
from acdc_compare.metrics import parse_metric
from acdc_compare.patching import parse_ablation
from acdc_compare.tasks.base import Corruption
from acdc_compare.tasks.registry import task_spec
from acdc_compare.types import Ablation, Metric, ThresholdScale

DEFAULT_CORRUPTION = "default"
SPEC_SCHEMA = "acdc_compare.sweep_spec/1"
# options a sweep sets itself: the threshold comes from `thresholds`, the journal lives in the job's folder
_RESERVED_OPTIONS = frozenset({"threshold", "journal", "progress", "prior", "order"})


class SpecError(ValueError):
    """The sweep spec is malformed; the message names the field and what it accepts."""


@dataclass(frozen=True)
class Job:
    """One discovery run of a sweep: everything that determines its circuit."""

    model: str
    task: str
    corruption: str
    method: str
    threshold: float
    threshold_scale: ThresholdScale
    seed: int
    n_prompts: int
    metric: Metric
    ablation: Ablation
    include_direct: bool
    options: tuple[tuple[str, Any], ...] = ()

    def settings(self) -> dict[str, Any]:
        """The job's settings as plain JSON values (what its id hashes)."""
        out = dataclasses.asdict(self)
        out["metric"], out["ablation"] = self.metric.value, self.ablation.value
        out["options"] = dict(self.options)
        return out

    @property
    def job_id(self) -> str:
        return self._name(self.settings(), f"-s{self.seed}")

    @property
    def group_id(self) -> str:
        """The id of the job's grid point over seeds (its id without the seed)."""
        settings = self.settings()
        del settings["seed"]
        return self._name(settings, "")

    def _name(self, settings: dict[str, Any], seed: str) -> str:
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
        scale = "r" if self.threshold_scale == "relative" else "a"
        model = Path(self.model).name or self.model
        return _slug(f"{model}-{self.task}-{self.corruption}-{self.method}-{scale}{self.threshold:g}{seed}-{digest}")

    @property
    def problem_key(self) -> tuple[Any, ...]:
        """Jobs with the same key share one prepared problem (model, prompts, metric, ablation, graph)."""
        return (self.model, self.task, self.corruption, self.seed, self.n_prompts, self.metric, self.ablation,
                self.include_direct)

    @property
    def group_key(self) -> tuple[Any, ...]:
        """Jobs with the same key differ only in their prompt seed: the unit of the stability measures."""
        return (self.model, self.task, self.corruption, self.method, self.threshold, self.threshold_scale,
                self.n_prompts, self.metric, self.ablation, self.include_direct, self.options)

    @classmethod
    def from_settings(cls, d: Mapping[str, Any]) -> "Job":
        """The job `settings()` describes (how jobs travel to workers: plain JSON values only)."""
        values = dict(d)
        values["metric"], values["ablation"] = parse_metric(values["metric"]), parse_ablation(values["ablation"])
        values["options"] = tuple(sorted(dict(values["options"]).items()))
        return cls(**values)


@dataclass(frozen=True)
class SweepSpec:
    """The grid a sweep runs (see the module docstring for the file form). Validated when made."""

    thresholds: tuple[float, ...]
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    tasks: tuple[str, ...] = ("ioi",)
    corruptions: tuple[str, ...] = (DEFAULT_CORRUPTION,)
    methods: tuple[str, ...] = ("acdc",)
    threshold_scale: ThresholdScale = "absolute"
    seeds: tuple[int, ...] = (0,)
    n_prompts: int = 16
    metric: Metric = Metric.KL
    ablation: Ablation = Ablation.CORRUPTED
    include_direct: bool = True
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    stable_fraction: float = 0.8

    def __post_init__(self) -> None:
        for name in ("thresholds", "models", "tasks", "corruptions", "methods", "seeds"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise SpecError(f"{name} must be a list, got {value!r}")
            if not value:
                raise SpecError(f"{name} must list at least one value")
            object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "thresholds", tuple(_threshold(t) for t in self.thresholds))
        object.__setattr__(self, "seeds", tuple(_whole(s, "seeds", 0) for s in self.seeds))
        object.__setattr__(self, "n_prompts", _whole(self.n_prompts, "n_prompts", 1))
        if self.threshold_scale not in get_args(ThresholdScale):
            raise SpecError(f"threshold_scale must be one of {list(get_args(ThresholdScale))}, "
                            f"got {self.threshold_scale!r}")
        try:
            object.__setattr__(self, "metric", parse_metric(self.metric))
            object.__setattr__(self, "ablation", parse_ablation(self.ablation))
        except ValueError as err:
            raise SpecError(str(err)) from None
        if not isinstance(self.include_direct, bool):
            raise SpecError(f"include_direct must be true or false, got {self.include_direct!r}")
        if not (isinstance(self.stable_fraction, (int, float)) and not isinstance(self.stable_fraction, bool)
                and 0 < self.stable_fraction <= 1):
            raise SpecError(f"stable_fraction must be a fraction in (0, 1], got {self.stable_fraction!r}")
        for name in ("models", "tasks", "corruptions", "methods"):
            bad = [v for v in getattr(self, name) if not isinstance(v, str) or not v]
            if bad:
                raise SpecError(f"{name} must be names (strings), got {bad}")
        object.__setattr__(self, "options", _check_options(self.methods, self.options, self.thresholds[0]))
        if "eap" in self.methods:
            try:
                check_eap_metric(self.metric)
            except ValueError as err:
                raise SpecError(f"methods lists eap with metric {self.metric.value!r}: {err}") from None
        self.task_corruptions()  # every task known and every corruption offered by some task

    def task_corruptions(self) -> list[tuple[str, str]]:
        """(task, corruption) pairs the grid runs: each listed corruption on every task that offers it
        ("default": the task's own). A corruption no listed task offers is refused."""
        return self._plan()[0]

    def skipped(self) -> list[tuple[str, str]]:
        """(task, corruption) pairs of the grid that the task does not offer, so not run (listed in the
        sweep's summary, never dropped silently)."""
        return self._plan()[1]

    def _plan(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        pairs: list[tuple[str, str]] = []
        skipped: list[tuple[str, str]] = []
        used: set[str] = set()
        for name in self.tasks:
            try:
                offered = task_spec(name).corruptions
            except (KeyError, ValueError) as err:
                raise SpecError(str(err)) from None
            for c in self.corruptions:
                chosen = _corruption(c, offered)
                if chosen is None:
                    skipped.append((name, c))
                    continue
                used.add(c)
                if (name, chosen.value) not in pairs:
                    pairs.append((name, chosen.value))
        unused = [c for c in self.corruptions if c not in used]
        if unused:
            raise SpecError(f"no task of {list(self.tasks)} offers corruption(s) {unused}; each task's corruptions "
                            "are listed by `acdc-compare tasks`")
        return pairs, skipped

    def jobs(self) -> list[Job]:
        """Every job of the grid, ordered so jobs sharing a model (then a prepared problem) run together."""
        jobs = [Job(model, task, corruption, method, tau, self.threshold_scale, seed, self.n_prompts, self.metric,
                    self.ablation, self.include_direct, tuple(sorted(self.options.get(method, {}).items())))
                for model in self.models for task, corruption in self.task_corruptions() for seed in self.seeds
                for method in self.methods for tau in self.thresholds]
        return list(dict.fromkeys(jobs))

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["metric"], out["ablation"] = self.metric.value, self.ablation.value
        out["options"] = {k: dict(v) for k, v in self.options.items()}
        return {"schema": SPEC_SCHEMA, **{k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}}


def spec_from_mapping(d: Mapping[str, Any]) -> SweepSpec:
    """A spec from a parsed TOML/JSON mapping; unknown keys are refused by name."""
    if not isinstance(d, Mapping):
        raise SpecError(f"a sweep spec is a table of settings, got {type(d).__name__}")
    d = {k: v for k, v in d.items() if k != "schema"}
    names = [f.name for f in dataclasses.fields(SweepSpec)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise SpecError(f"unknown sweep setting(s) {unknown}; a spec takes: {', '.join(names)}")
    if "thresholds" not in d:
        raise SpecError("a sweep spec needs thresholds = [...]")
    return SweepSpec(**d)


def load_spec(path: str | Path) -> SweepSpec:
    """Read a sweep spec from a TOML file (plain data; nothing in it is executed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep spec {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:  # TOMLDecodeError, not UTF-8, over 4300 digits, nesting too deep
        raise SpecError(f"{path} is not a valid TOML file: {f'{err}'[:200] or type(err).__name__}") from None
    try:
        return spec_from_mapping(data)
    except SpecError as err:
        raise SpecError(f"{path}: {err}") from None


def as_spec(spec: SweepSpec | Mapping[str, Any] | str | Path) -> SweepSpec:
    """A SweepSpec from a spec value, a mapping or a TOML file path."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, Mapping):
        return spec_from_mapping(spec)
    if isinstance(spec, (str, Path)):
        return load_spec(spec)
    raise TypeError(f"a sweep spec is a SweepSpec, a mapping or a TOML file path, got {type(spec).__name__}")


# ----- validation helpers ---------------------------------------------------------------------------------
def _threshold(value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or isinstance(value, int) and value > 2**1023
            or not math.isfinite(value) or value < 0):  # an int that large has no float value
        raise SpecError(f"thresholds must be finite numbers >= 0, got {value!r:.40}")
    return float(value)


def _whole(value: Any, name: str, lowest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise SpecError(f"{name} must be whole numbers >= {lowest}, got {value!r}")
    return int(value)


def _corruption(value: str, offered: Sequence[Corruption]) -> Corruption | None:
    """The corruption `value` names among a task's `offered` ones (None when the task does not offer it)."""
    if value == DEFAULT_CORRUPTION:
        return offered[0]
    try:
        chosen = Corruption(value)
    except ValueError:
        raise SpecError(f"unknown corruption {value!r}; use {DEFAULT_CORRUPTION!r} or one of "
                        f"{[c.value for c in Corruption]}") from None
    return chosen if chosen in offered else None


def _check_options(methods: Sequence[str], options: Any, threshold: float) -> dict[str, dict[str, Any]]:
    """Per-method options, checked by making each method's options value once."""
    if not isinstance(options, Mapping):
        raise SpecError(f"options must be a table per method ([options.eap-ig] ...), got {options!r}")
    for method in methods:
        try:
            algorithm(method)
        except ValueError as err:
            raise SpecError(str(err)) from None
    unknown = sorted(set(options) - set(methods))
    if unknown:
        raise SpecError(f"options given for method(s) {unknown} that the sweep does not run ({list(methods)})")
    out: dict[str, dict[str, Any]] = {}
    for method in methods:
        given = options.get(method, {})
        if not isinstance(given, Mapping):
            raise SpecError(f"options.{method} must be a table, got {given!r}")
        reserved = sorted(set(given) & _RESERVED_OPTIONS)
        if reserved:
            raise SpecError(f"options.{method}: {reserved} are set by the sweep itself (thresholds come from "
                            "`thresholds`, journals live in each job's folder)")
        bad = [k for k, v in given.items() if not isinstance(v, (bool, int, float, str))]
        if bad:
            raise SpecError(f"options.{method}: {bad} must be plain numbers, strings or booleans")
        try:
            make_options(method, threshold, **dict(given))
        except (ValueError, TypeError) as err:
            raise SpecError(f"options.{method}: {err}") from None
        if given:
            out[method] = dict(given)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


__all__ = ["DEFAULT_CORRUPTION", "Job", "SpecError", "SweepSpec", "ThresholdScale", "as_spec", "load_spec",
           "spec_from_mapping"]
