"""The comparison study in one resumable call (`run_study`, `acdc-compare study`): every task of the notes
evaluated on `n_eval` prompts with its 95% Wilson interval; a circuit (the demo's hybrid, candidates ranked by
learned masks for every task) for each task the model answers at least `min_accuracy` of the time and for the
disagreeing twin of each order-vs-meaning pair whose agreeing twin it answers that well; each circuit's
edge budget chosen on a frontier (the first share of the edges whose circuit keeps the target faithfulness on its
discovery prompts and on `validation_seed`'s); that circuit's faithfulness on `held_out_seed`'s prompts (never
used for any choice); its movers set against IOI's name movers and chance.

Everything a run finishes lands in OUT/study as plain JSON (settings.json, accuracy.json, frontier/TASK@SHARE.json
per budget tried, circuits/TASK@SHARE.json, TASK.json per circuit task): a rerun with the same OUT skips what is
there, so a killed run loses at most the budget in progress. Prints nothing: `log` gets one line per stage and task."""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from acdc_compare.algorithms.eap import evaluate_many
from acdc_compare.algorithms.hybrid import Ranking
from acdc_compare.algorithms.problem import Problem
from acdc_compare.api import get_model, prepare
from acdc_compare.backends import DEFAULT_MODEL, model_config, model_name
from acdc_compare.backends.transformer_lens import tokenizer as model_tokenizer
from acdc_compare.circuit import Circuit
from acdc_compare.experiment import stages
from acdc_compare.experiment.config import ExperimentConfig
from acdc_compare.experiment.stages import Log
from acdc_compare.export import load_circuit, save_circuit
from acdc_compare.faithfulness import circuit_faithfulness, normalized_faithfulness
from acdc_compare.files import atomic_write
from acdc_compare.fmt import num
from acdc_compare.graph import Graph
from acdc_compare.movers import MoverOverlap, circuit_movers
from acdc_compare.progress import ProgressLike, as_progress
from acdc_compare.report import KeyValues, Table, Text, write_report
from acdc_compare.roles import score_heads
from acdc_compare.roles.assign import MoverSet, movers_of
from acdc_compare.span_reads import (
    READ_RULE,
    SpanReads,
    ioi_story,
    pair_text,
    span_reads,
)
from acdc_compare.stats import Proportion
from acdc_compare.tasks.base import Corruption, TaskError
from acdc_compare.tasks.evaluate import TaskEvaluation
from acdc_compare.tasks.registry import (
    ORDER_MEANING_PAIRS,
    held_out_wordings,
    make_task,
    task_names,
    task_spec,
    tasks_table,
    verdict,
)
from acdc_compare.types import Metric

STUDY_TASKS: tuple[str, ...] = (
    "ioi", "pet-last", "pet-middle", "pet-first", "poorer", "richer", "size", "attribute", "opposites", "analogy",
    "adjective-last", "adjective-first", "verb-last", "verb-first", "verb-last-2shot", "verb-first-2shot",
    "adjective-last-2shot", "adjective-first-2shot", "colour-of-last", "colour-of-first", "colour-coloured-last",
    "colour-coloured-first", "material-of-last", "material-of-first", "greater-than")
EDGE_SHARES: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.4)
NO_MOVER_CLAIM = "answer not in the prompt"
NOTES_COLUMNS: tuple[str, ...] = (
    "task", "answer kind", "accuracy [95% CI]", "order vs meaning", "circuit edges [budget]",
    "faithfulness in-sample / validation / held-out", "held-out wordings", "movers", "shared with IOI's name movers [chance]")
NOTES_TITLE = "The table of the notes"


@dataclass(frozen=True)
class StudyConfig:
    """Settings of the study. Circuits use the demo's hybrid (EAP-IG on `rank_prompts` prompts starts masks
    learned for `learn_steps` steps over `n_prompts` discovery prompts within an edge budget; exact ACDC tests
    the lowest-ranked `tested`), for every task. The budgets of `edge_shares` are tried in order until a
    circuit keeps `target` of the behaviour on its discovery prompts and `target_validation` on
    `validation_seed`'s (the frontier is kept); `held_out_seed`'s prompts and the held-out wordings judge the
    chosen circuit and decide nothing."""

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
    target_validation: float = 0.8  # ... and on held_out_seed's prompts; the first budget doing both is kept
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
        for name in ("target", "target_validation"):
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


@dataclass
class StudyResult:
    """What `run_study` wrote and found: one row per task (the results JSON's "tasks"), the notes' table as
    plain text, and which circuit tasks were found by this run and which read back from an earlier one."""

    out_dir: Path
    results_path: Path
    report: Path
    rows: dict[str, dict[str, Any]]
    table: str
    resumed: list[str] = field(default_factory=list)
    discovered: list[str] = field(default_factory=list)
    seconds: float = 0.0  # this run's wall time
    total_seconds: float = 0.0  # the study's, over every run that contributed


def circuit_tasks(evals: dict[str, TaskEvaluation], min_accuracy: float) -> dict[str, str]:
    """The tasks that get a circuit, in table order, each with why: answered >= `min_accuracy`, or the
    disagreeing twin of an order-vs-meaning pair (the issue's rule: where order and meaning disagree, what the
    model does instead is explained whatever its accuracy)."""
    why = {t: f"answered >= {min_accuracy:.0%}" for t, e in evals.items() if e.accuracy >= min_accuracy}
    for pair in ORDER_MEANING_PAIRS:
        if pair.disagree_task in evals and pair.disagree_task not in why:
            why[pair.disagree_task] = f"disagreeing twin of {pair.agree_task} ({pair.name})"
    return {t: why[t] for t in evals if t in why}


def pair_verdicts(name: str, evals: dict[str, TaskEvaluation]) -> str:
    """'pair: verdict' for every order-vs-meaning pair holding `name` whose two tasks were evaluated."""
    found = [f"{p.name}: {verdict(evals[p.agree_task], evals[p.disagree_task])}" for p in ORDER_MEANING_PAIRS
             if name in (p.agree_task, p.disagree_task) and p.agree_task in evals and p.disagree_task in evals]
    return "; ".join(found)


def device_label(device: torch.device) -> str:
    """The GPU's name, or the CPU's model and the threads torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    label = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                label = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{label} ({torch.get_num_threads()} threads)"


def _json_value(x: Any) -> Any:
    """NaN and infinities as None: the files stay plain JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_value(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_value(v) for v in x]
    return x


def _write_json(path: Path, value: Any) -> Path:
    atomic_write(path, (json.dumps(_json_value(value), indent=1, allow_nan=False) + "\n").encode("utf-8"))
    return path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it to redo that part of the study") from err


def _check_settings(folder: Path, config: StudyConfig) -> None:
    """Write settings.json, or refuse to resume a study made with other settings."""
    path, settings = folder / "settings.json", _json_value(config.settings())
    if path.is_file():
        before = _read_json(path)
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            raise ValueError(f"{folder} holds a study made with other settings ({', '.join(changed)} differ); "
                             "use another output folder, or delete that one to start afresh")
    else:
        _write_json(path, settings)


def evaluate_accuracy(model: Any, config: StudyConfig, folder: Path, log: Log) -> tuple[dict[str, TaskEvaluation],
                                                                                      float]:
    """Every task's evaluation on `n_eval` prompts under the corruption the demo would give it, and the seconds
    they took. accuracy.json is rewritten after each task, so a rerun evaluates only the tasks it lacks."""
    path = folder / "accuracy.json"
    saved = _read_json(path) if path.is_file() else {"tasks": {}, "seconds": {}}
    evals = {t: TaskEvaluation(**e) for t, e in saved["tasks"].items() if t in config.tasks}
    seconds = {t: float(s) for t, s in saved["seconds"].items() if t in evals}
    todo = [t for t in config.tasks if t not in evals]
    if evals:
        log(f"accuracy table: {len(evals)} tasks read back from {path}")
    if todo:
        log(f"accuracy table: {len(todo)} tasks on {config.n_eval} prompts each (seed {config.seed}) ...")
    experiment = config.experiment()
    for name in todo:
        started = time.perf_counter()
        evals[name], = tasks_table(model, names=[name], n=config.n_eval, seed=config.seed,
                                   corruptions={name: experiment.corruption_of(name)})
        seconds[name] = time.perf_counter() - started
        _write_json(path, {"tasks": {t: asdict(e) for t, e in evals.items()}, "seconds": seconds})
        log(f"accuracy table: {name} {evals[name].accuracy_interval.describe()}, {seconds[name]:.0f} s")
    return {t: evals[t] for t in config.tasks}, sum(seconds.values())


def mover_scores(model: Any, name: str, config: StudyConfig) -> Any:
    """The task's head scores (mover score, attention to the answer) on its `n_prompts` discovery prompts: movers
    are decided by the lower end of their bootstrap intervals, which 8 prompts leave too wide."""
    task = make_task(name, model_tokenizer(model), n=config.n_prompts, seed=config.seed,
                     corruption=config.experiment().corruption_of(name))
    return score_heads(model, task, s_inhibition=False, progress=as_progress(config.progress))


def task_span_reads(model: Any, name: str, config: StudyConfig, movers: MoverSet,
                    name_movers: MoverSet) -> dict[str, Any] | None:
    """From which span the task's circuit movers (IOI's name movers where it has none: "heads_from" says which)
    read the answer, on its discovery prompts (`span_reads`); None when neither set holds a head."""
    heads, source = (movers.heads, "the task's movers") if movers.heads else (name_movers.heads,
                                                                             f"{config.ioi}'s name movers")
    if not heads:
        return None
    task = make_task(name, model_tokenizer(model), n=config.n_prompts, seed=config.seed,
                     corruption=config.experiment().corruption_of(name))
    problem = prepare(task, model=model, positions="spans", check=False)
    return {**span_reads(problem, heads, seed=config.seed).to_dict(), "heads_from": source}


def span_read_texts(rows: dict[str, dict[str, Any]], ioi: str) -> list[str]:
    """IOI's span reads against the known story, then each order-vs-meaning pair whose twins both have them."""
    found = {t: SpanReads.from_dict(r["span_reads"]) for t, r in rows.items() if r.get("span_reads")}
    texts = [ioi_story(found[ioi])] if ioi in found else []
    return texts + [pair_text(p, found[p.agree_task], found[p.disagree_task]) for p in ORDER_MEANING_PAIRS
                    if p.agree_task in found and p.disagree_task in found]


def budget_of(share: float, n_edges: int) -> int:
    """The edge budget of a share of the graph's edges (at least one edge)."""
    return max(1, round(share * n_edges))


def _step_name(name: str, share: float, ranking: Ranking) -> str:
    return f"{name}@{share:g}" + ("" if ranking == "learned" else f"-{ranking}")


def meets_targets(step: dict[str, Any], config: StudyConfig) -> bool:
    """The rule that picks a task's budget: in-sample and validation faithfulness both reach their targets."""
    f, v = step["faithfulness"], step["validation_faithfulness"]
    return f is not None and v is not None and f >= config.target and v >= config.target_validation


class _Discovery:
    """A task's discovery and validation prompts and EAP-IG ranking, made on first use: a study resumed past
    every budget step of a task needs none of them."""

    def __init__(self, model: Any, name: str, config: StudyConfig, log: Log) -> None:
        self.model, self.name, self.config, self.log = model, name, config, log
        self.n_edges = Graph.from_model_config(model_config(model)).n_edges
        self._made: tuple[Problem, Problem, torch.Tensor | None] | None = None

    def _problems(self) -> tuple[Problem, Problem, torch.Tensor | None]:
        if self._made is None:
            experiment = self.config.experiment()
            task = make_task(self.name, model_tokenizer(self.model), n=self.config.n_prompts, seed=self.config.seed,
                             corruption=experiment.corruption_of(self.name))
            problem, ranked_on = stages.discovery_problems(task, self.model, experiment)
            self._made = problem, ranked_on, stages.eap_ig_prior(ranked_on, experiment,
                                                                 as_progress(self.config.progress))
        return self._made

    def run(self, k: int, ranking: Ranking) -> stages.Discovery:
        return stages.discover_on(*self._problems(), self.config.experiment(k, ranking),
                                  as_progress(self.config.progress))

    def eap_ig_frontier(self, shares: Sequence[float]) -> list[dict[str, Any]]:
        """Faithfulness of EAP-IG's top-k circuits at each share, in-sample and on the validation prompts: one
        batch of patched forwards each, so the frontier beyond the first budget is measured cheaply."""
        problem, _, prior = self._problems()
        if prior is None:
            raise ValueError("EAP-IG's frontier needs the hybrid's EAP-IG ranking")
        validation = stages.validation_problem(self.name, self.model, self.config.experiment())
        graph = problem.graph
        masks = torch.stack([Circuit.from_scores(graph, prior, top_n=budget_of(x, self.n_edges)).kept
                             for x in shares])
        rows = []
        ends = [(p, p.metric_ends, evaluate_many(p, masks)) for p in (problem, validation)]
        for i, share in enumerate(shares):
            f, v = (normalized_faithfulness(float(values[i]), *metric_ends) for _, metric_ends, values in ends)
            rows.append({"edge_share": share, "k": budget_of(share, self.n_edges), "faithfulness": f,
                         "validation_faithfulness": v})
        return rows


def budget_step(discovery: _Discovery, share: float, ranking: Ranking, folder: Path) -> dict[str, Any]:
    """One budget of a task's frontier: its circuit (folder/circuits/TASK@SHARE.json) and faithfulness in-sample
    and on the validation prompts (folder/frontier/TASK@SHARE.json, written last: it marks the step done)."""
    name, config, model = discovery.name, discovery.config, discovery.model
    stem = _step_name(name, share, ranking)
    path = folder / "frontier" / f"{stem}.json"
    if path.is_file():
        return _read_json(path)
    started = time.perf_counter()
    k = budget_of(share, discovery.n_edges)
    discovery.log(f"  {name}: edge budget {share:.0%} ({k:,} edges), ranked by {ranking} ...")
    circuit = discovery.run(k, ranking).circuit
    save_circuit(circuit, folder / "circuits" / f"{stem}.json")
    validation = stages.held_out_faithfulness(circuit, name, model, config.experiment(k, ranking))
    step = {"edge_share": share, "k": k, "ranking": ranking, "edges": circuit.n_kept,
            "faithfulness": circuit_faithfulness(circuit), "validation_faithfulness": validation,
            "circuit": f"circuits/{stem}.json", "seconds": time.perf_counter() - started}
    _write_json(path, step)
    return step


def eap_ig_step(discovery: _Discovery, shares: Sequence[float], folder: Path) -> dict[str, Any]:
    """EAP-IG's frontier over `shares` (folder/frontier/TASK-eap-ig.json), measured once."""
    path = folder / "frontier" / f"{discovery.name}-eap-ig.json"
    if path.is_file():
        return _read_json(path)
    started = time.perf_counter()
    discovery.log(f"  {discovery.name}: EAP-IG's frontier at {', '.join(f'{x:.0%}' for x in shares)} of the edges ...")
    found = {"rows": discovery.eap_ig_frontier(shares), "seconds": time.perf_counter() - started}
    _write_json(path, found)
    return found


def frontier(model: Any, name: str, config: StudyConfig, folder: Path,
             log: Log) -> tuple[list[dict[str, Any]], int, dict[str, Any] | None]:
    """A task's budgets tried, the index of the chosen one and EAP-IG's frontier (None when not needed).

    Masks are learned at the first budget; when that circuit misses the targets, EAP-IG's top-k frontier over
    the other budgets (cheap) names the smallest budget where even the top EAP-IG edges meet them, and a circuit
    is found there with learned masks and, if they miss, with the EAP-IG ranking; where no budget's EAP-IG edges
    meet them, learned masks at the largest budget only. Chosen: the first step meeting the targets, else the
    one most faithful on validation."""
    discovery = _Discovery(model, name, config, log)
    steps = [budget_step(discovery, config.edge_shares[0], "learned", folder)]
    curve = None
    if not meets_targets(steps[0], config) and len(config.edge_shares) > 1:
        curve = eap_ig_step(discovery, config.edge_shares[1:], folder)
        reached = [row["edge_share"] for row in curve["rows"] if meets_targets(row, config)]
        share = reached[0] if reached else config.edge_shares[-1]
        for ranking in ("learned", "eap-ig") if reached else ("learned",):
            steps.append(budget_step(discovery, share, ranking, folder))
            if meets_targets(steps[-1], config):
                break
    met = [i for i, step in enumerate(steps) if meets_targets(step, config)]
    best = met[0] if met else max(range(len(steps)), key=lambda i: _or(steps[i]["validation_faithfulness"], -math.inf))
    return steps, best, curve


def wording_faithfulness(circuit: Circuit, name: str, model: Any, experiment: ExperimentConfig,
                         config: StudyConfig, wording: int) -> float:
    """The circuit's normalised faithfulness on `n_held_out` prompts of `held_out_seed` in a held-out wording:
    templates no discovery and no choice ever saw."""
    task = make_task(name, model_tokenizer(model), n=config.n_held_out, seed=config.held_out_seed,
                     corruption=experiment.corruption_of(name), wording=wording)
    problem = prepare(task, model=model, metric=config.metric, check=False)
    full, empty = problem.metric_ends
    return normalized_faithfulness(float(problem.evaluate(circuit)[0]), full, empty)


def _or(x: float | None, default: float) -> float:
    return default if x is None or not math.isfinite(x) else x


def study_task(model: Any, name: str, reason: str, config: StudyConfig, folder: Path, name_movers: MoverSet,
               log: Log) -> dict[str, Any]:
    """One task's circuit, chosen on its frontier of budgets, and what the study asks of it, saved to
    folder/TASK.json (written last: its presence marks the task done)."""
    started = time.perf_counter()
    steps, chosen, curve = frontier(model, name, config, folder, log)
    step = steps[chosen]
    circuit = load_circuit(folder / step["circuit"])
    experiment = config.experiment(step["k"], step["ranking"])
    held_out = stages.held_out_faithfulness(circuit, name, model, replace(experiment, held_out_seed=config.held_out_seed))
    row: dict[str, Any] = {
        "task": name, "reason": reason, "circuit": step["circuit"], "edges": circuit.n_kept,
        "edge_share": circuit.n_kept / circuit.n_edges, "budget_share": step["edge_share"],
        "meets_targets": meets_targets(step, config),
        "faithfulness": step["faithfulness"], "validation_faithfulness": step["validation_faithfulness"],
        "held_out_faithfulness": held_out,
        "wording_faithfulness": {str(w): wording_faithfulness(circuit, name, model, experiment, config, w)
                                 for w in held_out_wordings(name)},
        "ranking": step["ranking"], "frontier": steps,
        "eap_ig_frontier": None if curve is None else curve["rows"]}
    if name in config.no_answer_in_prompt:
        row.update(movers=None, borderline=None, shared_with_ioi=None, chance=None, mover_note=NO_MOVER_CLAIM)
    else:
        scores = mover_scores(model, name, config)
        movers, given = circuit_movers(circuit, scores), circuit_movers(circuit, scores, answer="given")
        overlap = MoverOverlap.of(movers, name_movers, int(scores.mover.numel()))
        row.update(movers=list(movers.heads), borderline=list(movers.borderline), shared_with_ioi=list(overlap.shared),
                   mover_intervals={h: list(movers.intervals[h]) for h in movers.heads if h in movers.intervals},
                   given_movers=list(given.heads), chance=None if name == config.ioi else overlap.chance,
                   mover_note=overlap.answer(), span_reads=task_span_reads(model, name, config, movers, name_movers))
    row["seconds"] = (sum(s["seconds"] for s in steps) + (0.0 if curve is None else curve["seconds"])
                      + time.perf_counter() - started)
    _write_json(folder / f"{name}.json", row)
    return row


def _row(name: str, evaluation: TaskEvaluation, found: dict[str, Any] | None,
         evals: dict[str, TaskEvaluation], reason: str) -> dict[str, Any]:
    """A task's entry in the results JSON: its accuracy, and its circuit's numbers where it got one."""
    interval = evaluation.accuracy_interval
    row: dict[str, Any] = {
        "answer_kind": task_spec(name).answer_kind, "corruption": evaluation.corruption,
        "accuracy": evaluation.accuracy, "interval": [interval.low, interval.high], "n_prompts": evaluation.n,
        "logit_diff": evaluation.logit_diff, "order_vs_meaning": pair_verdicts(name, evals) or None}
    if found is None:
        row["circuit"] = None
        row["no_circuit"] = reason
    else:
        row.update({k: v for k, v in found.items() if k != "task"})
    return row


def notes_rows(rows: dict[str, dict[str, Any]], ioi: str) -> list[list[str]]:
    """The notes' table: one row per task, cells as text (`NOTES_COLUMNS`)."""
    out = []
    for name, r in rows.items():
        accuracy = Proportion(r["accuracy"], r["n_prompts"]).short()
        has = r.get("circuit") is not None
        faith = " / ".join(num(r[k], fixed=2) if r[k] is not None else "-" for k in
                           ("faithfulness", "validation_faithfulness", "held_out_faithfulness")) if has else "-"
        if not has:
            movers = shared = "-"
        elif r["movers"] is None:
            movers = shared = r["mover_note"]
        else:
            movers = MoverSet(name, tuple(r["movers"]), tuple(r["borderline"])).describe()
            shared = "(these are IOI's)" if name == ioi else \
                f"{', '.join(r['shared_with_ioi']) or 'none'} [{r['chance']:.2f}]"
        out.append([name, r["answer_kind"], accuracy, r["order_vs_meaning"] or "-",
                    _edges_cell(r) if has else f"- ({r['no_circuit']})", faith, _wordings_cell(r) if has else "-",
                    movers, shared])
    return out


def _wordings_cell(r: dict[str, Any]) -> str:
    """Faithfulness on each held-out wording, or '-' for a single-wording task."""
    found = r.get("wording_faithfulness") or {}
    return " / ".join(num(f, fixed=2) if f is not None else "-" for f in found.values()) or "-"


def _edges_cell(r: dict[str, Any]) -> str:
    """Edges kept and the budget that found them; a budget short of the targets says so."""
    short = "" if r["meets_targets"] else ", targets not reached"
    return f"{r['edges']:,} [{r['budget_share']:.0%}{short}]"


def format_notes_table(rows: Sequence[Sequence[str]]) -> str:
    """The notes' table as plain text, columns padded to their widest cell."""
    table = [list(NOTES_COLUMNS), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(NOTES_COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def notes_markdown(results: dict[str, Any]) -> str:
    """The notes' table of a results JSON (`study_<cpu|cuda>.json`) as a Markdown table, for the README: the
    same cells as the report's."""
    rows = notes_rows(results["tasks"], results["settings"]["ioi"])

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(NOTES_COLUMNS) + " |", "|" + "---|" * len(NOTES_COLUMNS)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def run_study(config: StudyConfig, out_dir: str | Path, log: Log = lambda _: None,
              results_path: str | Path | None = None) -> StudyResult:
    """Run (or resume) the whole study into `out_dir` and write the results JSON (`results_path`, default
    OUT/study_<cpu|cuda>.json) and OUT/study_report.html, whose first section is the notes' table."""
    started = time.perf_counter()
    out = Path(out_dir)
    folder = out / "study"
    for part in ("circuits", "frontier"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    _check_settings(folder, config)
    log(f"loading {config.model} ...")
    model = get_model(config.model)
    device = next(model.parameters()).device
    evals, accuracy_seconds = evaluate_accuracy(model, config, folder, log)
    chosen = circuit_tasks(evals, config.min_accuracy)
    done = [t for t in chosen if (folder / f"{t}.json").is_file()]
    if done:
        log(f"resuming: {len(done)} tasks done ({', '.join(done)})")
    log(f"circuits for {len(chosen)} of {len(evals)} tasks: {', '.join(chosen) or 'none'}")
    todo = [t for t in chosen if t not in done]
    name_movers = MoverSet(config.ioi)
    if any(t not in config.no_answer_in_prompt for t in todo):
        log(f"IOI's name movers: head scores of {config.ioi} on {config.n_prompts} prompts ...")
        name_movers = movers_of(mover_scores(model, config.ioi, config))
        log(f"IOI's name movers: {name_movers.describe()}")
    found: dict[str, dict[str, Any]] = {t: _read_json(folder / f"{t}.json") for t in done}
    label, device_name = model_name(model), device_label(device)
    results_file = Path(results_path) if results_path is not None else out / f"study_{device.type}.json"
    results_file.parent.mkdir(parents=True, exist_ok=True)

    def write(pending: list[str]) -> tuple[dict[str, dict[str, Any]], list[list[str]], float, Path]:
        return _write_results(config, evals, chosen, found, pending, accuracy_seconds, label, device_name,
                              results_file, out)

    for i, name in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] {name} ({chosen[name]}) ...")
        found[name] = study_task(model, name, chosen[name], config, folder, name_movers, log)
        r = found[name]
        log(f"[{i}/{len(todo)}] {name}: {r['edges']} edges, faithfulness {num(r['faithfulness'], fixed=2)} / "
            f"validation {num(r['validation_faithfulness'], fixed=2)} / held-out "
            f"{num(r['held_out_faithfulness'], fixed=2)} (budget {r['budget_share']:.0%}), {r['mover_note']}, "
            f"{r['seconds']:.0f} s")
        write(todo[i:])
    rows, table_rows, total, report = write([])
    log(f"study written: {results_file}, {report}")
    return StudyResult(out, results_file, report, rows, format_notes_table(table_rows), done, todo,
                       time.perf_counter() - started, total)


PENDING = "pending: the run stopped before this task (rerun the command to resume)"


def _write_results(config: StudyConfig, evals: dict[str, TaskEvaluation], chosen: dict[str, str],
                   found: dict[str, dict[str, Any]], pending: list[str], accuracy_seconds: float, label: str,
                   device_name: str, results_file: Path,
                   out: Path) -> tuple[dict[str, dict[str, Any]], list[list[str]], float, Path]:
    """The results JSON, the notes' table as Markdown and the report, as far as the study has got: written
    after every task, so a stopped run leaves its results so far (`complete` false, `pending` named)."""
    skipped = {t: PENDING if t in pending else f"answered {e.accuracy:.0%} < {config.min_accuracy:.0%}"
               for t, e in evals.items()}
    rows = {t: _row(t, e, found.get(t), evals, skipped[t]) for t, e in evals.items()}
    total = accuracy_seconds + sum(r["seconds"] for r in found.values())
    results = {"device": device_name, "model": label, "validation_seed": config.validation_seed,
               "held_out_seed": config.held_out_seed, "settings": config.settings(), "complete": not pending,
               "pending": pending, "tasks": rows, "total_seconds": total}
    _write_json(results_file, results)
    table_rows = notes_rows(rows, config.ioi)
    atomic_write(out / "study_notes.md", (notes_markdown(_json_value(results)) + "\n").encode("utf-8"))
    report = write_report(out / "study_report.html", title=f"acdc_compare study on {label}",
                          sections=_report_sections(config, rows, table_rows, total))
    return rows, table_rows, total, report


def _frontier_rows(name: str, row: dict[str, Any]) -> list[list[Any]]:
    """A task's frontier as report rows: its circuits, then EAP-IG's top-k circuits where they were measured."""
    found = [[name, f"{s['edge_share']:.0%}", f"hybrid, {s['ranking']} ranking", s["edges"], s["faithfulness"],
              s["validation_faithfulness"], s["seconds"]] for s in row.get("frontier") or ()]
    return found + [[name, f"{s['edge_share']:.0%}", "EAP-IG's top k alone", s["k"], s["faithfulness"],
                     s["validation_faithfulness"], None] for s in row.get("eap_ig_frontier") or ()]


def _report_sections(config: StudyConfig, rows: dict[str, dict[str, Any]], table_rows: list[list[str]],
                     total: float) -> list[Any]:
    how = (f"Accuracy: correct beats wrong answer on {config.n_eval} prompts of seed {config.seed}, with its 95% "
           f"Wilson interval. A task answered >= {config.min_accuracy:.0%} gets a circuit, and so does the "
           "disagreeing twin of every order-vs-meaning pair whose agreeing twin is. Circuits: the demo's hybrid "
           f"for every task (EAP-IG on {config.rank_prompts} prompts starts masks learned for {config.learn_steps} "
           f"steps over {config.n_prompts} prompts within an edge budget; exact ACDC tests the lowest "
           f"{config.tested}). The first budget is {config.edge_shares[0]:.0%} of the edges; a circuit keeping less "
           f"than {config.target:.2f} of the behaviour on its discovery prompts or {config.target_validation:.2f} on "
           f"{config.n_held_out} validation prompts of seed {config.validation_seed} sends the task up its frontier: "
           f"EAP-IG's top-k circuits at {', '.join(f'{x:.0%}' for x in config.edge_shares[1:])} of the edges name "
           "the smallest budget where they meet both targets (else the largest), and the hybrid runs there, with "
           "learned masks and, if they miss, the EAP-IG ranking. The first circuit meeting both targets is kept "
           "(else the one best on validation). Faithfulness is normalised (KL): "
           f"in-sample on the {config.n_prompts} discovery prompts (seed {config.seed}), validation (seed "
           f"{config.validation_seed}, which chose the budget), held-out on {config.n_held_out} prompts of seed "
           f"{config.held_out_seed}, used for no choice, and on the same seed's prompts in each held-out wording "
           "(templates discovery never ran on). Movers: heads on the circuit's kept paths "
           "passing the one mover rule; chance is the overlap with IOI's name movers two random sets of those "
           f"sizes would have. Tasks whose answer is not in the prompt ({', '.join(config.no_answer_in_prompt)}) "
           "get no mover claim.")
    seconds = [[t, r.get("reason") or r.get("no_circuit"), r.get("seconds")] for t, r in rows.items()]
    reads = span_read_texts(rows, config.ioi)
    reads_how = ("Per span S, the drop in the task's logit difference (full model minus a circuit that keeps every "
                 "span edge but those into the k and v inputs of the movers' key-value groups at S), mean over "
                 "the discovery prompts with its 95% bootstrap interval; a key-value group is shared by several "
                 f"query heads, all blinded alike; {READ_RULE}.")
    frontier_rows = [row for t, r in rows.items() for row in _frontier_rows(t, r)]
    return [Table(NOTES_TITLE, NOTES_COLUMNS, table_rows), Text("How the table was made", how),
            Table("Each budget tried (the frontier)", ["task", "budget", "circuit", "edges", "in-sample", "validation",
                                                       "seconds"], frontier_rows),
            Table("Why each task has a circuit, and its seconds", ["task", "circuit", "seconds"], seconds),
            Text("From which span the movers read the answer", "\n\n".join([reads_how, *reads])),
            KeyValues("Settings", [*config.settings().items(), ("total seconds", total)])]


__all__ = ["NOTES_COLUMNS", "NOTES_TITLE", "STUDY_TASKS", "StudyConfig", "StudyResult", "circuit_tasks",
           "format_notes_table", "notes_markdown", "notes_rows", "pair_verdicts", "run_study"]
