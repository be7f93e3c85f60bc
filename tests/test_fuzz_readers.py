"""Property-based fuzzing (Hypothesis) of every reader of user files: prompts CSV/JSONL, circuit JSON, MIB JSON
and `.pt`, sweep TOML and ACDC journals.

Each reader gets files first written by the project's own writer, then mutated (fields deleted, duplicated or
replaced, types changed, bytes truncated or flipped, unicode inserted, huge numbers, NaN constants, deep
nesting). The contract: a correct result (a valid file round-trips exactly; an accepted mutated file means what
it says) or the reader's documented error (a ValueError subclass with a message), never another exception type,
a hang or a silently changed value.

About 200 examples per reader by default; ACDC_FUZZ_EXAMPLES=N runs N instead."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import re
import signal
import string
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from acdc_compare.circuit import Circuit, random_circuit
from acdc_compare.export import SCHEMA_1, circuit_to_json, load_circuit, save_circuit, upgrade_edge_name
from acdc_compare.graph import Graph, GraphConfig
from acdc_compare.journal import Decision, JournalMismatchError, JournalWriter, read_journal
from acdc_compare.mib import circuit_from_mib, circuit_to_mib, load_mib, mib_scores, save_mib
from acdc_compare.mib_pt import load_pt, mib_to_pt
from acdc_compare.sweeps.spec import SpecError, load_spec
from acdc_compare.tasks.base import TaskError
from acdc_compare.tasks.prompts_file import PROMPT_COLUMNS, read_prompts_file, task_from_file

N_EXAMPLES = int(os.environ.get("ACDC_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=N_EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
HANG_S = 20  # one read taking longer than this is a hang

GRAPH = Graph(GraphConfig(n_layers=2, n_heads=2, n_kv_heads=2))
GQA = Graph(GraphConfig(n_layers=2, n_heads=4, n_kv_heads=2))
ROOT = Path(__file__).resolve().parents[1]


# ----- helpers -----------------------------------------------------------------------------------------------
@contextmanager
def no_hang(seconds: int = HANG_S) -> Iterator[None]:
    def fail(*_: Any) -> None:
        raise AssertionError(f"a reader ran longer than {seconds} s (a hang)")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def outcome(read: Callable[[], Any], errors: type[BaseException] | tuple[type[BaseException], ...]) -> Any:
    """The reader's result, or None after its documented error (which must say something); any other exception
    propagates and fails the test."""
    with no_hang():
        try:
            return read()
        except errors as err:
            assert str(err).strip(), f"{type(err).__name__} without a message"
            return None


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


NASTY_SCALARS = st.one_of(
    st.none(), st.booleans(), st.sampled_from([0, 1, -1, 2, 10**30, -(10**30), 10**400, 2**63, 0.5, -0.0, 1e308,
                                               math.nan, math.inf, -math.inf, 1.5, 3.0]),
    st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.sampled_from(["", "nan", "inf", "-inf", "true", "1", "\u2028", "\x00", "é😀", "a\nb"]),
)
NASTY = st.one_of(
    NASTY_SCALARS,
    st.lists(NASTY_SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=5), NASTY_SCALARS, max_size=3),
    st.sampled_from([[[]], {"": {}}, {"__float__": "nan"}, {"__float__": "x"}]),
    st.integers(1, 200).map(lambda n: json.loads("[" * n + "]" * n)),  # deep nesting (deeper: raw bytes)
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if len(prefix) > 6:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:6]) if len(value) > 12 else enumerate(value):
            yield from _paths(v, (*prefix, i))
        if len(value) > 12:  # long lists (scores): a few elements, not every one
            for i in (len(value) // 2, len(value) - 1):
                yield from _paths(value[i], (*prefix, i))


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        value = value[k]
    return value


@st.composite
def mutated(draw: st.DrawFn, original: Any, n_max: int = 3) -> Any:
    """A copy of a JSON value with 1..n_max structural mutations at random places."""
    value = json.loads(json.dumps(original))
    for _ in range(draw(st.integers(1, n_max))):
        path = draw(st.sampled_from(list(_paths(value))))
        op = draw(st.sampled_from(["delete", "duplicate", "replace", "wrap", "stringify", "add_key", "negate"]))
        if not path:
            if op in ("replace", "wrap"):
                value = copy.deepcopy(draw(NASTY)) if op == "replace" else [value]
            continue
        parent, key = _at(value, path[:-1]), path[-1]
        if op == "delete":
            del parent[key]
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, json.loads(json.dumps(parent[key])))
        elif op == "duplicate" and isinstance(parent, dict):
            parent[f"{key}\u0301"] = json.loads(json.dumps(parent[key]))
        elif op == "replace":
            parent[key] = copy.deepcopy(draw(NASTY))  # never the strategy's own object, which a later op changes
        elif op == "wrap":
            parent[key] = draw(st.sampled_from([[parent[key]], {"v": parent[key]}]))
        elif op == "stringify":
            parent[key] = json.dumps(parent[key])
        elif op == "add_key" and isinstance(parent[key], dict):
            parent[key][draw(st.text(max_size=6))] = copy.deepcopy(draw(NASTY))
        elif op == "negate" and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
            parent[key] = -parent[key] * draw(st.sampled_from([1, 10**20, 1.000001]))
    return value


def dumps(value: Any, draw: st.DrawFn) -> bytes:
    """JSON text of a (possibly mutated) value: NaN constants when it holds NaN, ASCII or raw unicode."""
    return json.dumps(value, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


@st.composite
def byte_mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """The bytes with one byte-level mutation: truncation, a flipped byte, inserted unicode or bytes, a cut."""
    op = draw(st.sampled_from(["truncate", "flip", "insert", "cut"]))
    at = draw(st.integers(0, max(len(data) - 1, 0)))
    if op == "truncate":
        return data[:at]
    if op == "flip" and data:
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    if op == "insert":
        chunk = draw(st.one_of(st.text(min_size=1, max_size=4).map(lambda s: s.encode("utf-8", "surrogatepass")),
                               st.binary(min_size=1, max_size=4),
                               st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1" * 5000, b"\xef\xbb\xbf",
                                                "\u2028".encode(), b"\r", b"\n", b"\x00"])))
        return data[:at] + chunk + data[at:]
    return data[:at] + data[at + draw(st.integers(1, 50)):]


# ----- journals ----------------------------------------------------------------------------------------------
IDENTITY = {"model": "tiny", "threshold": 0.01, "graph": GRAPH.config.key}
SCORES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(math.nan))
DECISIONS = st.lists(st.builds(Decision, st.integers(0, 10**6), st.booleans(), SCORES, SCORES), max_size=8)


def _write_journal(path: Path, decisions: list[Decision]) -> bytes:
    writer = JournalWriter(path, IDENTITY, 0)
    for d in decisions:
        writer.write(d)
    writer.close()
    return path.read_bytes()


def _same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def _same_decision(a: Decision, b: Decision) -> bool:
    return a.edge == b.edge and a.kept is b.kept and _same_float(a.score, b.score) and _same_float(a.metric, b.metric)


@FUZZ
@given(DECISIONS)
def test_a_journal_round_trips_exactly(decisions: list[Decision]) -> None:
    with scratch() as d:
        _write_journal(d / "j.jsonl", decisions)
        back = read_journal(d / "j.jsonl", IDENTITY)
    assert len(back) == len(decisions) and all(map(_same_decision, back, decisions))


def _journal_records(data: bytes) -> list[Any]:
    """The decision records an accepted journal must have read: the complete lines after the header, up to a
    line cut short."""
    lines = data.decode("utf-8").split("\n")[:-1]
    out = []
    for line in lines[1:]:
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                break
    return out


def _refused_journal(data: bytes, match: str) -> None:
    with scratch() as d:
        (d / "j.jsonl").write_bytes(data)
        with pytest.raises(JournalMismatchError, match=match):
            read_journal(d / "j.jsonl", IDENTITY)


def _check_journal(data: bytes) -> None:
    with scratch() as d:
        (d / "j.jsonl").write_bytes(data)
        back = outcome(lambda: read_journal(d / "j.jsonl", IDENTITY), JournalMismatchError)
    if not back:
        return
    for dec, rec in zip(back, _journal_records(data)):  # whatever is accepted means what the file says
        assert type(rec["e"]) is int and rec["e"] == dec.edge >= 0
        assert rec["k"] is dec.kept
        for got, key in ((dec.score, "s"), (dec.metric, "m")):
            assert _same_float(got, math.nan if rec[key] is None else float(rec[key]))


@FUZZ
@given(st.data(), DECISIONS.filter(bool))
@example(None, [Decision(0, True, 0.5, 0.1)]).via("regression: a record without its keys raised KeyError")
def test_a_mutated_journal_reads_or_raises_the_journal_error(data: st.DataObject | None,
                                                             decisions: list[Decision]) -> None:
    with scratch() as d:
        text = _write_journal(d / "j.jsonl", decisions).decode()
    lines = text.split("\n")[:-1]
    if data is None:  # the @example: records lacking keys, or not objects
        for bad in ('{"e": 1}', "[1, true, 0.5, 0.1]", "3", '{"e": 1.5, "k": true, "s": 0, "m": 0}',
                    '{"e": 1, "k": "false", "s": 0, "m": 0}', '{"e": -1, "k": true, "s": 0, "m": 0}',
                    '{"e": 1, "k": true, "s": "x", "m": 0}', '{"e": 1, "k": true, "s": 1' + "0" * 400 + ', "m": 0}'):
            _refused_journal(("\n".join([lines[0], bad, *lines[1:]]) + "\n").encode(), "line 2: .* is not a decision")
        for header in ("[]", "3", '{"schema": "acdc_compare.journal/1", "identity": []}'):
            _refused_journal(("\n".join([header, *lines[1:]]) + "\n").encode(), "not an acdc_compare journal")
        _refused_journal(text.encode() + b"\xff\n", "not UTF-8")
        return
    if data.draw(st.booleans()):
        parsed = [json.loads(line) for line in lines]
        i = data.draw(st.integers(0, len(parsed) - 1))
        parsed[i] = data.draw(mutated(parsed[i]))
        out = "\n".join(json.dumps(p) for p in parsed) + "\n"
        _check_journal(out.encode())
    else:
        _check_journal(data.draw(byte_mutated(text.encode())))


# ----- prompts files -----------------------------------------------------------------------------------------
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
ROW = st.tuples(TEXT, TEXT, TEXT, st.one_of(st.none(), TEXT))
KEYS = {"prompt": ("prompt", "clean", "Clean_Prompt"), "corrupted": ("corrupted", "corrupted-prompt"),
        "answer": ("answer", "correct"), "wrong answer": ("wrong answer", "wrong_answer", "WRONG")}


def _jsonl(rows: list[tuple[str, str, str, str | None]], keys: tuple[str, ...], ascii_only: bool) -> bytes:
    return "".join(json.dumps(dict(zip(keys, (p, c, a, w or ""))), ensure_ascii=ascii_only) + "\n"
                   for p, c, a, w in rows).encode()


def _csv(rows: list[tuple[str, str, str, str | None]], keys: tuple[str, ...]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(keys)
    for p, c, a, w in rows:
        writer.writerow([p, c, a, w or ""])
    return out.getvalue().encode()


@st.composite
def prompts_file(draw: st.DrawFn) -> tuple[str, bytes, list[tuple[str, str, str, str | None]]]:
    rows = draw(st.lists(ROW, min_size=1, max_size=5))
    keys = tuple(draw(st.sampled_from(KEYS[c])) for c in PROMPT_COLUMNS)
    if draw(st.booleans()):
        return ".jsonl", _jsonl(rows, keys, draw(st.booleans())), rows
    return ".csv", _csv(rows, keys), rows


@FUZZ
@given(prompts_file())
@example((".jsonl", _jsonl([("a\u2028b", "c", " d", None)], ("prompt", "corrupted", "answer", "wrong"), False),
          [("a\u2028b", "c", " d", None)])).via("regression: a raw U+2028 in a JSONL value split the line")
@example((".csv", _csv([("a\x1cb", "c\x85", " d", "e\u2029")], PROMPT_COLUMNS),
          [("a\x1cb", "c\x85", " d", "e\u2029")])).via("control separators inside CSV values")
def test_a_prompts_file_round_trips_exactly(case: tuple[str, bytes, list[Any]]) -> None:
    suffix, data, rows = case
    with scratch() as d:
        (d / f"p{suffix}").write_bytes(data)
        read = outcome(lambda: read_prompts_file(d / f"p{suffix}"), TaskError)
    assert read is not None, "a valid prompts file was refused"
    assert list(zip(read.prompts, read.corrupted, read.answers, read.wrong_answers)) == rows


@FUZZ
@given(st.data(), prompts_file())
@example(None, (".csv", b"prompt,corrupted,answer,prompt\nx,y, z,w\n", [])).via(
    "regression: a CSV header naming a column twice kept only the last value")
@example(None, (".csv", b"prompt,corrupted,answer\n" + b'"' + b"x" * 200_000 + b'",y, z\n', [])).via(
    "regression: a CSV field over the csv module's size limit raised _csv.Error")
@example(None, (".jsonl", b'{"prompt": 1' + b"0" * 5000 + b', "corrupted": "y", "answer": " z"}\n', [])).via(
    "regression: an integer of more than 4300 digits raised a bare ValueError")
@example(None, (".jsonl", b"[" * 100_000 + b"\n", [])).via("regression: deep nesting raised RecursionError")
def test_a_mutated_prompts_file_reads_or_raises_task_error(data: st.DataObject | None,
                                                           case: tuple[str, bytes, list[Any]]) -> None:
    suffix, raw, _ = case
    if data is not None and suffix == ".jsonl" and data.draw(st.booleans()):
        objects = [json.loads(line) for line in raw.decode().split("\n")[:-1]]
        i = data.draw(st.integers(0, len(objects) - 1))
        objects[i] = data.draw(mutated(objects[i]))
        raw = "\n".join(json.dumps(o, ensure_ascii=False) for o in objects).encode("utf-8", "surrogatepass")
    elif data is not None:
        raw = data.draw(byte_mutated(raw))
    with scratch() as d:
        (d / f"p{suffix}").write_bytes(raw)
        read = outcome(lambda: read_prompts_file(d / f"p{suffix}"), TaskError)
    if data is None and suffix == ".csv":
        assert read is None, "a CSV naming a column twice, or with an oversized field, must be refused"
    if read is None:
        return
    for column in (read.prompts, read.corrupted, read.answers):
        assert all(isinstance(v, str) and v for v in column)
    assert all(w is None or (isinstance(w, str) and w) for w in read.wrong_answers)
    if suffix == ".jsonl":  # every accepted value is the file's own
        lines = re.split(r"\r\n|\r|\n", raw.decode("utf-8-sig"))
        for n, p in zip(read.lines, read.prompts):
            assert p in json.loads(lines[n - 1]).values()


@pytest.fixture(scope="module")
def tok():
    import transformers

    from acdc_compare.backends.gguf import convert_gguf

    return transformers.AutoTokenizer.from_pretrained(str(convert_gguf()))


@settings(FUZZ, max_examples=max(N_EXAMPLES // 4, 10))
@given(st.data(), prompts_file())
@example(None, (".jsonl", b'{"prompt": "a\\ud800", "corrupted": "b", "answer": " c"}\n', [])).via(
    "regression: a JSON escape of a lone surrogate reached the tokenizer, which raised TypeError")
def test_a_mutated_prompts_file_builds_a_task_or_raises_task_error(tok: Any, data: st.DataObject | None,
                                                                  case: tuple[str, bytes, list[Any]]) -> None:
    suffix, raw, _ = case
    if data is not None:
        raw = data.draw(st.one_of(st.just(raw), byte_mutated(raw)))
    with scratch() as d:
        (d / f"p{suffix}").write_bytes(raw)
        task = outcome(lambda: task_from_file(tok, d / f"p{suffix}"), TaskError)
    if data is None:
        assert task is None
    if task is not None:
        assert task.n_prompts >= 1


# ----- circuit JSON ------------------------------------------------------------------------------------------
def _circuit(graph: Graph, seed: int, legacy: bool = False) -> Circuit:
    c = random_circuit(graph, 3, seed)
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(graph.n_edges, generator=g, dtype=torch.float64) * 10.0 ** torch.randint(
        -12, 6, (graph.n_edges,), generator=g)
    scores[seed % 5::7] = math.nan
    scores[c.kept] = scores[c.kept].nan_to_num(0.25)
    scores[seed % 11] = [math.inf, -math.inf, 0.0, -0.0, 5e-324][seed % 5]
    metrics = {"kl": 0.25, "odd": math.nan, "nested": {"x": [1, -math.inf, "é"]}}
    settings = {"method": "acdc" if legacy else "eap-ig", "threshold": 0.01, "tuple": [1, 2]}
    return Circuit(graph, c.kept, scores, metrics=metrics, settings=settings)


CIRCUITS = [_circuit(g, s) for g in (GRAPH, GQA) for s in range(3)]


def _same_circuit(a: Circuit, b: Circuit) -> bool:
    return (a.graph.config == b.graph.config and torch.equal(a.kept, b.kept)
            and torch.equal(a.scores.view(torch.int64), b.scores.view(torch.int64))  # bit for bit, NaN included
            and torch.equal(a.score_kinds, b.score_kinds)
            and json.dumps(circuit_to_json(a)) == json.dumps(circuit_to_json(b)))


@FUZZ
@given(st.sampled_from(CIRCUITS))
def test_a_circuit_file_round_trips_exactly(c: Circuit) -> None:
    with scratch() as d:
        back = load_circuit(save_circuit(c, d / "c.json"))
    assert _same_circuit(c, back)


def _circuit_json(c: Circuit, legacy: bool) -> dict[str, Any]:
    d = json.loads(json.dumps(circuit_to_json(c)))
    if legacy:
        d["schema"] = SCHEMA_1
        del d["score_kinds"]
    return d


def _normal(value: Any) -> Any:
    """A JSON value with numbers as floats, for comparing what was read with what the file says."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return "nan" if math.isnan(value) else float(value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return [_normal(v) for v in value]


@FUZZ
@given(st.data(), st.sampled_from(CIRCUITS), st.booleans())
@example(None, CIRCUITS[0], False).via("regressions: huge counts, huge numbers, huge graphs")
def test_a_mutated_circuit_file_loads_or_raises_value_error(data: st.DataObject | None, c: Circuit,
                                                            legacy: bool) -> None:
    original = _circuit_json(c, legacy)
    if data is None:
        for path, value in ((("score_kinds", 0, 1), 10**12), (("score_kinds", 0, 1), 10**30),
                            (("scores", 0), 10**400), (("graph", "n_layers"), 10**9),
                            (("graph", "n_heads"), 10**6), (("graph", "n_kv_heads"), 1)):
            d = json.loads(json.dumps(original))
            _at(d, path[:-1])[path[-1]] = value
            with scratch() as tmp:
                (tmp / "c.json").write_text(json.dumps(d))
                assert outcome(lambda: load_circuit(tmp / "c.json"), ValueError) is None, path
        return
    if data.draw(st.booleans()):
        d = data.draw(mutated(original))
        raw = dumps(d, data.draw)
    else:
        d = None
        raw = data.draw(byte_mutated(json.dumps(original, indent=1).encode()))
    with scratch() as tmp:
        (tmp / "c.json").write_bytes(raw)
        with _any_warnings():
            back = outcome(lambda: load_circuit(tmp / "c.json"), ValueError)
    if back is None or d is None:
        return
    again = circuit_to_json(back)  # an accepted file means what it says
    assert set(again["kept"]) == {upgrade_edge_name(back.graph, n) for n in d["kept"]}
    assert _normal(again["scores"]) == _normal(d["scores"])
    assert _normal(again["metrics"]) == _normal(d["metrics"])
    assert _normal(again["settings"]) == _normal(d["settings"])


@contextmanager
def _any_warnings() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ----- MIB JSON and .pt --------------------------------------------------------------------------------------
def _mib_check(back: Any, d: Any, graph: Graph) -> None:
    """An accepted MIB object means what it says: each file edge that names one of ours gives its kept flag and
    score."""
    if back is None or not isinstance(d, dict) or not isinstance(d.get("edges"), dict):
        return
    c, report = back
    for name, info in d["edges"].items():
        if name in report.unmapped_edges or graph.grouped:
            continue
        e = graph.edge_index(name)
        assert bool(c.kept[e]) is info["in_graph"]
        score = info.get("score")
        assert _same_float(float(c.scores[e]), math.nan if score is None else float(score))


MIBS = [(circuit_to_mib(c, 64), c) for c in CIRCUITS]


@FUZZ
@given(st.sampled_from(MIBS), st.booleans())
def test_a_mib_file_round_trips_exactly(case: tuple[dict[str, Any], Circuit], pt: bool) -> None:
    _, c = case
    with scratch() as d:
        path = d / ("m.pt" if pt else "m.json")
        save_mib(c, path, 64)
        back, report = load_mib(path, c.graph, 64)
    resid = c.graph.edge_sender_tensor >= 0
    assert torch.equal(back.kept[resid], c.kept[resid]) and not report.missing_edges and not report.unmapped_edges
    assert torch.equal(back.scores[resid], mib_scores(c)[resid])


@FUZZ
@given(st.data(), st.sampled_from(MIBS))
@example(None, MIBS[0]).via("regressions: huge scores, deep nesting")
def test_a_mutated_mib_json_loads_or_raises_value_error(data: st.DataObject | None,
                                                        case: tuple[dict[str, Any], Circuit]) -> None:
    original, c = case
    if data is None:
        d = json.loads(json.dumps(original))
        next(iter(d["edges"].values()))["score"] = 10**400
        for raw in (json.dumps(d).encode(), b"[" * 100_000, b'{"cfg": 1' + b"0" * 5000 + b"}", b"\xff{}"):
            with scratch() as tmp:
                (tmp / "m.json").write_bytes(raw)
                assert outcome(lambda: load_mib(tmp / "m.json", c.graph, 64), ValueError) is None
        return
    if data.draw(st.booleans()):
        d = data.draw(mutated(original))
        raw = dumps(d, data.draw)
    else:
        d, raw = None, data.draw(byte_mutated(json.dumps(original).encode()))
    with scratch() as tmp:
        (tmp / "m.json").write_bytes(raw)
        back = outcome(lambda: load_mib(tmp / "m.json", c.graph, data.draw(st.sampled_from([None, 64]))),
                       ValueError)
    _mib_check(back, d, c.graph)


PT_VALUES = st.one_of(NASTY, st.sampled_from([torch.zeros(3), torch.zeros(0), torch.tensor(2.0), torch.ones(2, 2),
                                               torch.zeros(3, dtype=torch.complex64), torch.tensor([True]),
                                               torch.tensor(10**9), torch.zeros(40, 40, dtype=torch.float16)]))


@FUZZ
@given(st.data(), st.sampled_from(MIBS))
@example(None, MIBS[0]).via("regressions: misshapen .pt dicts")
def test_a_mutated_mib_pt_loads_or_raises_value_error(data: st.DataObject | None,
                                                      case: tuple[dict[str, Any], Circuit]) -> None:
    original, c = case
    p = mib_to_pt(original)
    if data is None:
        for key, value in (("src_nodes", 3), ("nodes_in_graph", torch.tensor(True)), ("cfg", {"n_layers": 10**9,
                           "n_heads": 2, "parallel_attn_mlp": False}), ("edges_scores", "x"),
                           ("cfg", {"n_layers": "2", "n_heads": 2, "parallel_attn_mlp": False}),
                           ("dst_nodes", [1, 2])):
            with scratch() as tmp:
                torch.save({**p, key: value}, tmp / "m.pt")
                assert outcome(lambda: load_mib(tmp / "m.pt", c.graph, 64), ValueError) is None, key
        return
    mode = data.draw(st.sampled_from(["replace", "cfg", "bytes", "list"]))
    if mode == "replace":
        p = {**p, data.draw(st.sampled_from(sorted(p))): copy.deepcopy(data.draw(PT_VALUES))}
        if data.draw(st.booleans()):
            del p[data.draw(st.sampled_from(sorted(p)))]
    elif mode == "cfg":
        p = {**p, "cfg": data.draw(mutated(p["cfg"]))}
    elif mode == "list":
        key = data.draw(st.sampled_from(["src_nodes", "dst_nodes"]))
        p = {**p, key: data.draw(mutated(p[key]))}
    with scratch() as tmp:
        torch.save(p, tmp / "m.pt")
        if mode == "bytes":
            (tmp / "m.pt").write_bytes(data.draw(byte_mutated((tmp / "m.pt").read_bytes())))
        outcome(lambda: load_mib(tmp / "m.pt", c.graph, 64), ValueError)


# ----- sweep TOML --------------------------------------------------------------------------------------------
def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def to_toml(d: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(v)}\n" for k, v in d.items() if v is not None)


BASE_SPEC = load_spec(ROOT / "examples" / "sweep_small.toml")


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    d = BASE_SPEC.to_json()
    d["thresholds"] = draw(st.lists(st.floats(0, 1e6, allow_subnormal=True), min_size=1, max_size=4))
    d["seeds"] = draw(st.lists(st.integers(0, 2**40), min_size=1, max_size=4))
    d["n_prompts"] = draw(st.integers(1, 2**40))
    d["stable_fraction"] = draw(st.floats(1e-9, 1.0))
    d["threshold_scale"] = draw(st.sampled_from(["relative", "absolute"]))
    return d


@FUZZ
@given(specs())
def test_a_sweep_spec_round_trips_exactly(d: dict[str, Any]) -> None:
    with scratch() as tmp:
        (tmp / "s.toml").write_text(to_toml(d), encoding="utf-8")
        spec = load_spec(tmp / "s.toml")
    assert spec.to_json() == d
    assert load_spec(_write(to_toml(spec.to_json()))) == spec


def _write(text: str) -> Path:
    fd, name = tempfile.mkstemp(suffix=".toml")
    os.close(fd)
    Path(name).write_text(text, encoding="utf-8")
    return Path(name)


def _strict_same(got: Any, given_: Any) -> bool:
    """Equal, with bool never standing in for a number (True == 1 in Python)."""
    if isinstance(got, bool) or isinstance(given_, bool):
        return type(got) is type(given_) and got == given_
    if isinstance(got, (list, tuple)) and isinstance(given_, (list, tuple)):
        return len(got) == len(given_) and all(map(_strict_same, got, given_))
    if isinstance(got, dict) and isinstance(given_, dict):
        return got.keys() == given_.keys() and all(_strict_same(got[k], given_[k]) for k in got)
    return got == given_


@FUZZ
@given(st.data(), specs())
@example(None, BASE_SPEC.to_json()).via("regressions: a huge threshold, a bool fraction")
def test_a_mutated_sweep_spec_loads_or_raises_spec_error(data: st.DataObject | None, d: dict[str, Any]) -> None:
    if data is None:
        for key, value in (("thresholds", [10**400]), ("stable_fraction", True), ("thresholds", [True]),
                           ("n_prompts", 1.0)):
            with scratch() as tmp:
                (tmp / "s.toml").write_text(to_toml({**d, key: value}), encoding="utf-8")
                assert outcome(lambda: load_spec(tmp / "s.toml"), SpecError) is None, key
        with scratch() as tmp:
            (tmp / "s.toml").write_text("a = " + "[" * 100_000, encoding="utf-8")
            assert outcome(lambda: load_spec(tmp / "s.toml"), SpecError) is None
        return
    given_ = None
    if data.draw(st.booleans()):
        given_ = data.draw(mutated(d))
        text = to_toml(given_).encode() if isinstance(given_, dict) else toml_value(given_).encode()
    else:
        text = data.draw(byte_mutated(to_toml(d).encode()))
    with scratch() as tmp:
        (tmp / "s.toml").write_bytes(text)
        spec = outcome(lambda: load_spec(tmp / "s.toml"), SpecError)
    if spec is None or not isinstance(given_, dict):
        return
    out = spec.to_json()
    for key, value in given_.items():  # an accepted spec holds what the file says
        if key in ("schema", "metric", "ablation") or value is None:
            continue
        assert _strict_same(out[key], value), key
