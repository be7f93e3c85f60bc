"""Progress reporting without printing: a long step takes a `Progress` (a factory of bars) from its caller.

Algorithms and analyses never decide whether or where to draw a bar: they call `progress(desc, total)` once
per long step and `update` the bar it returns. The command line passes `terminal_progress()` (tqdm bars on
stderr when it is a terminal, else one plain line per step) or `silent` (under --quiet); tests pass a recorder. `as_progress`
turns the `progress=True/False` shorthand of the Python API into one of those.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol, TextIO


class Bar(Protocol):
    """One step's bar: `update(n)` after n more units of `total` are done; `set_postfix` shows live values
    (e.g. kept=37); `close` when the step ends (also on error)."""

    def update(self, n: int = 1) -> Any: ...

    def set_postfix(self, **values: Any) -> Any: ...

    def close(self) -> Any: ...


class Progress(Protocol):
    """A factory of bars: `progress(desc, total, unit=..., initial=...)`; `initial` units are already done
    (e.g. replayed from a journal)."""

    def __call__(self, desc: str, total: int, *, unit: str = "it", initial: int = 0) -> Bar: ...


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values: Any) -> None:
        pass

    def close(self) -> None:
        pass


def silent(desc: str, total: int, *, unit: str = "it", initial: int = 0) -> Bar:
    """The Progress that shows nothing."""
    return _NoBar()


class _TqdmBar:
    """A tqdm bar whose `set_postfix` does not force a redraw (tqdm refreshes at its own pace)."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def update(self, n: int = 1) -> None:
        self._bar.update(n)

    def set_postfix(self, **values: Any) -> None:
        self._bar.set_postfix(values, refresh=False)

    def close(self) -> None:
        self._bar.refresh()
        self._bar.close()


def stage_line(desc: str, total: int, unit: str = "it", initial: int = 0) -> str:
    """The one line a step prints where no bar can be drawn, e.g. "ACDC: 120 edges (30 already done)"."""
    units = unit if total == 1 or unit.endswith("s") else f"{unit}s"
    done = f" ({initial:,} already done)" if initial else ""
    return f"{desc}: {total:,} {units}{done}"


def terminal_progress(stream: TextIO | None = None) -> Progress:
    """tqdm bars on `stream` (default: sys.stderr at the time a bar starts) when that stream is a terminal;
    piped or redirected output gets one plain line per step as it starts (`stage_line`), no bar characters."""

    def progress(desc: str, total: int, *, unit: str = "it", initial: int = 0) -> Bar:
        out = stream if stream is not None else sys.stderr
        if not _is_terminal(out):
            print(stage_line(desc, total, unit, initial), file=out, flush=True)
            return _NoBar()
        from tqdm.auto import tqdm

        return _TqdmBar(tqdm(total=total, initial=initial, desc=desc, unit=unit, file=out, leave=True,
                             dynamic_ncols=True))

    return progress


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # a closed or detached stream
        return False


ProgressLike = Progress | bool | None


def as_progress(progress: ProgressLike) -> Progress:
    """A Progress from the API's shorthand: True -> `terminal_progress()`, False or None -> `silent`, a
    Progress itself unchanged."""
    if progress is None or progress is False:
        return silent
    if progress is True:
        return terminal_progress()
    if not callable(progress):
        raise TypeError(f"progress must be True, False or a Progress (a bar factory), got {progress!r}")
    return progress


__all__ = ["Bar", "Progress", "ProgressLike", "as_progress", "silent", "stage_line", "terminal_progress"]
