"""Named tasks, the order-vs-meaning pairs, and the table `acdc-compare tasks` prints."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Any, Literal

from acdc_compare.backends.transformer_lens import tokenizer as model_tokenizer
from acdc_compare.progress import ProgressLike, as_progress
from acdc_compare.tasks.base import Corruption, Task, TaskError, check_wording
from acdc_compare.tasks.prompts_file import is_prompts_file, read_prompts_file, task_from_file
from acdc_compare.tasks import greater_than, induction, ioi
from acdc_compare.tasks.comparison import (
    ANALOGY_WORDINGS,
    ATTRIBUTE_WORDINGS,
    COMPARATIVE_WORDINGS,
    CORRUPTIONS,
    OPPOSITE_WORDINGS,
    PET_WORDINGS,
    SIZE_WORDINGS,
    make_analogy,
    make_attribute,
    make_comparative,
    make_opposites,
    make_pet_family,
    make_size,
)
from acdc_compare.tasks.evaluate import TaskEvaluation, evaluate_task
from acdc_compare.tasks.formats import REGISTERED_FORMATS, format_named, make_copy
from acdc_compare.tasks.greater_than import make_greater_than
from acdc_compare.tasks.induction import make_induction
from acdc_compare.tasks.ioi import make_ioi, make_ioi_acdc
from acdc_compare.tasks.recall import RECALL_LINKS, make_recall


AnswerKind = Literal["name", "animal", "adjective", "noun", "verb", "number", "token"]


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: its generator `make(tokenizer, n=..., seed=..., corruption=..., wording=...)`, a
    one-line description, the number of prompts it gets by default, the corruptions it offers (the first is
    its default), what kind of word its answer is (the mover question is asked per kind) and how many
    held-out wordings it offers (wordings 1 .. `wordings`: templates no discovery sees; wording 0 is the one
    discovery runs on)."""

    name: str
    make: Callable[..., Task]
    description: str
    default_n: int = 100
    corruptions: tuple[Corruption, ...] = CORRUPTIONS
    answer_kind: AnswerKind = "name"
    wordings: int = 0

    @property
    def default_corruption(self) -> Corruption:
        return self.corruptions[0]

    @property
    def held_out_wordings(self) -> tuple[int, ...]:
        return tuple(range(1, self.wordings + 1))


@dataclass(frozen=True)
class OrderMeaningPair:
    """Two tasks with the same content: in `agree_task` word order and meaning point to the same answer, in
    `disagree_task` they point to different ones. A model reading meaning does both; one answering by
    position does the first and fails the second."""

    name: str
    agree_task: str
    disagree_task: str
    shows: str


# Held-out wordings per generator family: every wording of its frame but wording 0.
_HELD_PET, _HELD_COMPARATIVE, _HELD_ATTRIBUTE, _HELD_SIZE = (len(w) - 1 for w in (
    PET_WORDINGS, COMPARATIVE_WORDINGS, ATTRIBUTE_WORDINGS, SIZE_WORDINGS))
_HELD_OPPOSITES, _HELD_ANALOGY = len(OPPOSITE_WORDINGS) - 1, len(ANALOGY_WORDINGS) - 1
_HELD_ADJECTIVE, _HELD_VERB = len(RECALL_LINKS["adjective"]) - 1, len(RECALL_LINKS["verb"]) - 1
_ABC = (Corruption.ANSWERS,)
_MEANING_ONLY = (Corruption.MEANING,)
_SPECS = (
    TaskSpec("ioi", make_ioi, "IOI, Wang et al.'s 15 templates, ABBA + BABA, ABC corruption",
             corruptions=_ABC, wordings=len(ioi.WORDINGS) - 1),
    TaskSpec("ioi-acdc", make_ioi_acdc, "IOI, ACDC's single template 'Then, A and B went to the PLACE...'",
             corruptions=_ABC, wordings=len(ioi.ACDC_WORDINGS) - 1),
    TaskSpec("pet-last", partial(make_pet_family, position="last"),
             "pet family, second pet listed last (order and meaning agree)", wordings=_HELD_PET),
    TaskSpec("pet-middle", partial(make_pet_family, position="middle"),
             "pet family, second pet listed in the middle", wordings=_HELD_PET),
    TaskSpec("pet-first", partial(make_pet_family, position="first"),
             "pet family, second pet listed first (order and meaning disagree)", wordings=_HELD_PET),
    TaskSpec("poorer", partial(make_comparative, ask="opposite"),
             "'Emma is richer than Sarah. The poorer person is' -> Sarah (second-named)",
             wordings=_HELD_COMPARATIVE),
    TaskSpec("richer", partial(make_comparative, ask="same"),
             "'Emma is richer than Sarah. The richer person is' -> Emma (first-named)",
             wordings=_HELD_COMPARATIVE),
    TaskSpec("attribute", make_attribute, "'John is tall. Mary is short. The tall one is' -> John",
             wordings=_HELD_ATTRIBUTE),
    TaskSpec("size", make_size, "'The elephant is bigger than the mouse. The smaller animal is the' -> mouse",
             answer_kind="animal", wordings=_HELD_SIZE),
    TaskSpec("opposites", make_opposites, "'The opposite of hot is' -> cold", answer_kind="adjective",
             wordings=_HELD_OPPOSITES),
    TaskSpec("analogy", make_analogy, "'hot is to cold as tall is to' -> short", answer_kind="adjective",
             wordings=_HELD_ANALOGY),
    TaskSpec("adjective-last", partial(make_recall, kind="adjective", ask="last"),
             "'Mary is tall. John is short. John is' -> short (most recent adjective: order agrees)",
             answer_kind="adjective", wordings=_HELD_ADJECTIVE),
    TaskSpec("adjective-first", partial(make_recall, kind="adjective", ask="first"),
             "'Mary is tall. John is short. Mary is' -> tall (earlier adjective: order disagrees)",
             answer_kind="adjective", wordings=_HELD_ADJECTIVE),
    TaskSpec("verb-last", partial(make_recall, kind="verb", ask="last"),
             "'Mary runs. John sings. John' -> sings (most recent verb: order agrees)",
             answer_kind="verb", wordings=_HELD_VERB),
    TaskSpec("verb-first", partial(make_recall, kind="verb", ask="first"),
             "'Mary runs. John sings. Mary' -> runs (earlier verb: order disagrees)",
             answer_kind="verb", wordings=_HELD_VERB),
    TaskSpec("verb-last-2shot", partial(make_recall, kind="verb", ask="last", shots=2),
             "two solved examples, then 'Mary runs. John sings. John' -> sings (order agrees)", answer_kind="verb",
             wordings=_HELD_VERB),
    TaskSpec("verb-first-2shot", partial(make_recall, kind="verb", ask="first", shots=2),
             "two solved examples, then 'Mary runs. John sings. Mary' -> runs (order disagrees)",
             answer_kind="verb", wordings=_HELD_VERB),
    TaskSpec("adjective-last-2shot", partial(make_recall, kind="adjective", ask="last", shots=2),
             "two solved examples, then 'Mary is tall. John is short. John is' -> short (order agrees)",
             answer_kind="adjective", wordings=_HELD_ADJECTIVE),
    TaskSpec("adjective-first-2shot", partial(make_recall, kind="adjective", ask="first", shots=2),
             "two solved examples, then 'Mary is tall. John is short. Mary is' -> tall (order disagrees)",
             answer_kind="adjective", wordings=_HELD_ADJECTIVE),
    *(TaskSpec(f"{f}-{ask}", partial(make_copy, fmt=f, ask=ask),
               f"{format_named(f).example(ask)} ({'entity stated last: order agrees' if ask == 'last' else 'entity stated first: order disagrees'})",
               answer_kind=format_named(f).answer_kind, wordings=format_named(f).wordings - 1)
      for f in REGISTERED_FORMATS for ask in ("last", "first")),
    TaskSpec("greater-than", make_greater_than, "'The war lasted from the year 1745 to 17' -> a later year",
             corruptions=_MEANING_ONLY, answer_kind="number", wordings=len(greater_than.WORDINGS) - 1),
    TaskSpec("induction", make_induction, "repeated random tokens, next token at every repeat position "
             "(single-wording: random tokens have no template)", 50,
             corruptions=_MEANING_ONLY, answer_kind="token", wordings=induction.WORDINGS - 1),
)
TASKS: MappingProxyType[str, TaskSpec] = MappingProxyType({s.name: s for s in _SPECS})

ORDER_MEANING_PAIRS: tuple[OrderMeaningPair, ...] = (
    OrderMeaningPair("pet position", "pet-last", "pet-first",
                     "does the model pick the pet by its species, or the name in the slot the example's pet had?"),
    OrderMeaningPair("pet position (middle)", "pet-last", "pet-middle",
                     "the same with the pet moved only one slot"),
    OrderMeaningPair("comparative", "poorer", "richer",
                     "does the model read the comparative, or name the second-named (most recent) person?"),
    OrderMeaningPair("adjective recall", "adjective-last", "adjective-first",
                     "does the model recall the adjective said of the queried person, or the most recent one?"),
    *(OrderMeaningPair(f"{f} format", f"{f}-last", f"{f}-first",
                       f"does the model copy the {format_named(f).values} stated of the queried entity, or the most "
                       "recent one?") for f in REGISTERED_FORMATS),
    OrderMeaningPair("verb recall", "verb-last", "verb-first",
                     "does the model recall the verb said of the queried person, or the most recent one?"),
    OrderMeaningPair("verb recall (2 examples)", "verb-last-2shot", "verb-first-2shot",
                     "the same after two solved examples of the question"),
    OrderMeaningPair("adjective recall (2 examples)", "adjective-last-2shot", "adjective-first-2shot",
                     "the same after two solved examples of the question"),
)

# Verdicts compare the pairwise accuracies (correct vs the order answer) with their 95% Wilson intervals
# (`TaskEvaluation.accuracy_interval`) against chance and against each other.
CHANCE = 0.5  # on a disagree prompt, below this the order answer wins more often than the meaning answer


def task_names() -> list[str]:
    """Registered task names, in table order."""
    return list(TASKS)


def task_spec(name: str) -> TaskSpec:
    """The registered task of that name; a TaskError listing the known tasks otherwise."""
    spec = TASKS.get(name)
    if spec is None:
        raise TaskError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return spec


def held_out_wordings(name: str) -> tuple[int, ...]:
    """The wordings of a registered task that no discovery runs on (empty for a single-wording task)."""
    return task_spec(name).held_out_wordings


def make_task(name: str, tokenizer: Any, n: int | None = None, seed: int = 0,
              corruption: Corruption | str | None = None, wording: int = 0) -> Task:
    """Build a registered task with the model's tokenizer (n=None: the task's default number of prompts;
    corruption=None: the task's default corruption; wording: 0 for discovery, one of
    `held_out_wordings(name)` to check a circuit on templates discovery never saw). The clean prompts do
    not depend on the corruption."""
    spec = task_spec(name)
    check_wording(wording, spec.wordings + 1, name)
    chosen = spec.default_corruption if corruption is None else corruption
    return spec.make(tokenizer, n=spec.default_n if n is None else n, seed=seed, corruption=chosen,
                     wording=wording)


CorruptionRows = Literal["default", "all"] | Mapping[str, Corruption]


def tasks_table(model: Any, names: Sequence[str] | None = None, n: int | None = None,
                seed: int = 0, corruptions: CorruptionRows = "all",
                progress: ProgressLike = None, wording: int = 0, corrupted: bool = True) -> list[TaskEvaluation]:
    """Every (or the named) registered task evaluated on the model, with the model's own tokenizer: one
    evaluation per task and corruption ("all", default task order then corruption order), per task with
    its default corruption ("default"), or per task with the corruption a mapping gives it (a task the
    mapping lacks: its default). A name may be a prompts file (.jsonl / .csv: its first `n` rows, one row
    of the table with the file's own corrupted prompts). `progress`: one bar over the evaluations.
    `wording` > 0: the tasks in that held-out wording (names=None: every task offering it; a named task or
    prompts file without it is refused). `corrupted=False`: clean prompts alone (`evaluate_task`)."""
    tok = model_tokenizer(model)
    if names is None:
        names = [name for name, spec in TASKS.items() if wording in range(spec.wordings + 1)]
    files_named = [name for name in names if is_prompts_file(name)]
    if wording and files_named:
        raise TaskError(f"a prompts file has one wording, its own; wording {wording} cannot apply to "
                        f"{', '.join(files_named)}: leave the file out or use wording 0")
    for name in names:
        if not is_prompts_file(name):
            check_wording(wording, task_spec(name).wordings + 1, name)
    rows = _table_rows(list(names), corruptions)
    files = {name: read_prompts_file(name) for name, _ in rows if is_prompts_file(name)}  # all checked first
    bar = as_progress(progress)("tasks", len(rows), unit="task")
    out = []
    try:
        for name, corruption in rows:
            bar.set_postfix(task=name)
            task = first_prompts(task_from_file(tok, files[name]), n) if name in files else \
                make_task(name, tok, n=n, seed=seed, corruption=corruption, wording=wording)
            out.append(evaluate_task(model, task, corrupted=corrupted))
            bar.update(1)
    finally:
        bar.close()
    return out


def first_prompts(task: Task, n: int | None) -> Task:
    """The task's first `n` prompts, or all of them when it holds no more than `n` (None: all)."""
    return task.subset(n) if n is not None and n < task.n_prompts else task


def _table_rows(names: list[str], corruptions: CorruptionRows) -> list[tuple[str, Corruption | None]]:
    """(task name or prompts file, corruption) per row of `tasks_table`; a file's row has no corruption."""
    chosen = [None if is_prompts_file(name) else task_spec(name) for name in names]
    if not (isinstance(corruptions, Mapping) or corruptions in ("default", "all")):
        raise ValueError(f"corruptions must be 'default', 'all' or a mapping, got {corruptions!r}")
    rows: list[tuple[str, Corruption | None]] = []
    for name, spec in zip(names, chosen):
        if spec is None:
            rows.append((name, None))
        elif isinstance(corruptions, Mapping):
            rows.append((spec.name, corruptions.get(spec.name, spec.default_corruption)))
        else:
            rows += [(spec.name, c) for c in (spec.corruptions if corruptions == "all" else spec.corruptions[:1])]
    return rows


def format_task_list(tokenizer: Any) -> str:
    """Every registered task: name, description, corruptions and one example prompt with its answers, built
    with `tokenizer` (no model is run)."""
    lines = []
    for spec in TASKS.values():
        example = make_task(spec.name, tokenizer, n=1, seed=0)
        correct = example.info.get("correct_answers", [tokenizer.decode([int(example.correct[0, 0])])])[0]
        wrong = (example.info.get("wrong_answers") or [None])[0]
        prompt = example.prompts[0] if example.prompts else tokenizer.decode(example.clean[0].tolist())
        lines.append(f"{spec.name}: {spec.description}")
        lines.append(f"    corruptions: {', '.join(c.value for c in spec.corruptions)} (default "
                     f"{spec.default_corruption.value}); {spec.default_n} prompts by default; held-out wordings: "
                     f"{', '.join(map(str, spec.held_out_wordings)) or 'none'}")
        lines.append(f"    e.g. {_clip(prompt)!r} -> {correct!r}" + ("" if wrong is None else f" (wrong: {wrong!r})"))
    lines.append("or a prompts file: --task my_prompts.jsonl / .csv with the columns prompt, corrupted, answer, "
                 "wrong answer")
    return "\n".join(lines)


def _clip(text: str, width: int = 110) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3):]


def verdict(agree: TaskEvaluation, disagree: TaskEvaluation) -> str:
    """A one-line reading of an order-vs-meaning pair from the two accuracies' 95% intervals:
    - agree's interval reaches chance: no clear preference (it fails even when order and meaning agree);
    - the intervals overlap (no measurable loss when they disagree): by meaning when disagree's interval lies
      above chance, else no clear preference;
    - disagree clearly below agree: by position when disagree's interval lies below chance, mostly by meaning
      when above it, partly by position when it holds chance."""
    a, d = agree.accuracy_interval, disagree.accuracy_interval
    if not a.above(CHANCE):
        return "no clear preference: not above chance even when order and meaning agree"
    if a.overlaps(d):
        return "answers by meaning" if d.above(CHANCE) else "no clear preference: disagree's interval holds chance"
    if d.below(CHANCE):
        return "answers by position"
    return "mostly by meaning, partly by position" if d.above(CHANCE) else "partly by position"


def format_tasks_table(evals: Sequence[TaskEvaluation], pairs: bool = True) -> str:
    """A plain-text table: one row per task and corruption (the clean-prompt columns only on a task's first
    row, as they do not depend on the corruption); then, for each order-vs-meaning pair whose two tasks were
    evaluated, agree vs disagree side by side with a verdict."""
    clean_head = f"{'task':<15} {'n':>4} {'acc':>5} {'logit diff':>10} {'P diff':>7} {'P(correct)':>10}"
    head = f"{clean_head} {'corruption':<10} {'KL(cl||co)':>10} {'corr. LD':>8}"
    lines = [head, "-" * len(head)]
    previous = None
    for e in evals:
        clean = "" if e.name == previous else (
            f"{e.name:<15} {e.n:>4} {_pct(e.accuracy):>5} {_num(e.logit_diff):>10} "
            f"{_num(e.prob_diff, 3):>7} {e.p_correct:>10.3f}")
        lines.append(f"{clean:<{len(clean_head)}} {e.corruption or '-':<10} {_num(e.kl, 3):>10} "
                     f"{_num(e.corrupted_logit_diff):>8}")
        previous = e.name
    lines.append("acc: correct beats wrong answer (sets: P(correct set) > P(wrong set); induction: top-1); "
                 "corr. LD: logit diff on the corrupted prompts")
    lines.append("corruption: meaning = the information that picks the answer removed (answers kept in place); "
                 "answers = the candidate answers replaced by fresh words")
    by_name: dict[str, TaskEvaluation] = {}
    for e in evals:
        by_name.setdefault(e.name, e)
    shown = [p for p in ORDER_MEANING_PAIRS if p.agree_task in by_name and p.disagree_task in by_name]
    if pairs and shown:
        lines += ["", "Order vs meaning (agree: word order and meaning give the same answer; disagree: they differ; "
                  "acc [95% Wilson interval] over n prompts)"]
        sub = (f"{'pair':<22} {'agree':<15} {'n':>4} {'acc [95% CI]':>15} {'LD':>6} | "
               f"{'disagree':<15} {'n':>4} {'acc [95% CI]':>15} {'LD':>6} | verdict")
        lines += [sub, "-" * len(sub)]
        for p in shown:
            a, d = by_name[p.agree_task], by_name[p.disagree_task]
            lines.append(f"{p.name:<22} {_pair_cells(a)} | {_pair_cells(d)} | {verdict(a, d)}")
    return "\n".join(lines)


def _pair_cells(e: TaskEvaluation) -> str:
    """Task, n, accuracy with its interval and logit difference: one side of an order-vs-meaning row."""
    return f"{e.name:<15} {e.n:>4} {e.accuracy_interval.short():>15} {_num(e.logit_diff):>6}"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"
