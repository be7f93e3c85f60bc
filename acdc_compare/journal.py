"""An append-only journal of greedy decisions, so a long run never loses its progress.

JSON lines: a header naming what the run is (model, graph, task, threshold, ...), then one line per decided
edge. A run killed mid-line leaves a truncated last line, which is ignored on resume. Plain JSON only.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

SCHEMA = "acdc_compare.journal/1"


class JournalMismatchError(ValueError):
    """The journal belongs to another run (model, task, threshold, ...)."""


@dataclass(frozen=True)
class Decision:
    edge: int
    kept: bool
    score: float  # NaN when the edge was removed untested (dead receiver)
    metric: float  # the current metric after this decision


def read_journal(path: str | os.PathLike, identity: dict[str, Any]) -> list[Decision]:
    """Decisions recorded for a run with this identity; [] when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise JournalMismatchError(f"{path} is not an acdc_compare journal (not UTF-8 text: {err}); use another "
                                   "journal path, or delete it to start afresh") from None
    lines = text.split("\n")[:-1]  # the piece after the last newline is a line cut short
    if not lines or not lines[0].strip():
        return []
    try:
        header = json.loads(lines[0])
    except (ValueError, RecursionError):
        raise JournalMismatchError(f"{path} is not an acdc_compare journal (unreadable header)") from None
    if not isinstance(header, dict) or header.get("schema") != SCHEMA:
        schema = header.get("schema") if isinstance(header, dict) else None
        raise JournalMismatchError(f"{path} is not an acdc_compare journal (schema {schema!r})")
    recorded = header.get("identity", {})
    if not isinstance(recorded, dict):
        raise JournalMismatchError(f"{path} is not an acdc_compare journal (its identity is not an object); use "
                                   "another journal path, or delete it to start afresh")
    diffs = [f"{k}: journal has {recorded.get(k)!r}, this run has {v!r}" for k, v in identity.items()
             if recorded.get(k) != v]
    if diffs:
        raise JournalMismatchError(
            f"journal {path} belongs to another run ({'; '.join(diffs)}). Use another journal path, or delete "
            "it to start afresh."
        )
    decisions = []
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            break  # a line cut short by a kill: everything before it is intact
        decisions.append(_decision(rec, path, n))
    return decisions


def _decision(rec: Any, path: Path, line: int) -> Decision:
    """One record line as a Decision; JournalMismatchError naming the line when it is not one the writer writes."""
    ok = (isinstance(rec, dict) and {"e", "k", "s", "m"} <= rec.keys() and type(rec["e"]) is int and rec["e"] >= 0
          and isinstance(rec["k"], bool) and all(_is_num(rec[k]) for k in ("s", "m")))
    if not ok:
        raise JournalMismatchError(
            f"journal {path}, line {line}: {json.dumps(rec)[:80]} is not a decision (an object with an edge index \"e\" "
            "(int >= 0), \"k\" (true/false), and numbers or null \"s\", \"m\"); the file is damaged: use another "
            "journal path, or delete it to start afresh")
    return Decision(rec["e"], rec["k"], _num(rec["s"]), _num(rec["m"]))


def _is_num(x: Any) -> bool:
    if x is None or isinstance(x, float):
        return True
    if type(x) is not int:
        return False
    try:
        float(x)
    except OverflowError:
        return False
    return True


class JournalWriter:
    """Appends decisions; creates the file with its header when new. Flushes every line."""

    def __init__(self, path: str | os.PathLike, identity: dict[str, Any], n_existing: int) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._truncate_partial_line()
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self._fh: TextIO = open(self.path, "a", encoding="utf-8")
        if fresh:
            self._fh.write(json.dumps({"schema": SCHEMA, "identity": identity}) + "\n")
            self._fh.flush()
        self.n_written = n_existing

    def _truncate_partial_line(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            with open(self.path, "r+b") as fh:
                fh.truncate(end)

    def write(self, d: Decision) -> None:
        rec = {"e": d.edge, "k": d.kept, "s": _enc(d.score), "m": _enc(d.metric)}
        self._fh.write(json.dumps(rec) + "\n")
        self._fh.flush()
        self.n_written += 1

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()


def _enc(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _num(x: float | None) -> float:
    return math.nan if x is None else float(x)
