"""Checks made before any model loads: output paths can be written, input files read, tasks and prompt counts
exist; each failure is a ValueError (or FileNotFoundError) naming the flag and why."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import tempfile
from pathlib import Path

from acdc_compare.files import plain_os_error, plain_reason

NO_NEW_FILES = "the file system there allows no new files, as under /proc and /sys"


def writable_dir(path: str | Path, flag: str) -> Path:
    """A folder the command can create or write into; ValueError saying which flag and why otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is an existing file, not a folder; give a folder (created if missing)")
    _check_can_create(path, flag)
    _probe(path, path, flag)
    return path


def writable_file(path: str | Path, flag: str) -> Path:
    """A file the command can create or overwrite; ValueError saying which flag and why otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file path")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{flag} {path} is not writable (permission denied); choose a file you can write")
    if not path.exists():
        _check_can_create(path, flag)
    _probe(path.parent, path, flag)
    if path.exists():
        try:  # a journal is appended to; opening without writing leaves it as it was
            with open(path, "ab"):
                pass
        except OSError as err:
            raise ValueError(f"{flag} {path}: {plain_os_error(err, 'write')}") from None
    return path


def _probe(folder: Path, target: Path, flag: str) -> None:
    """Create (then remove) the missing folders down to `folder` and a file in it: the one sure test, since
    os.access says yes to root under /proc and /sys, where creating fails. Nothing is left behind."""
    made: list[Path] = []
    try:
        for missing in reversed([p for p in (folder, *folder.parents) if not p.exists()]):
            trying = f"the folder {missing}"
            missing.mkdir()
            made.append(missing)
        trying = f"a file in {folder}"
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".acdc-compare-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = NO_NEW_FILES if err.errno == errno.ENOENT else plain_reason(err)  # its folders were just made
        raise ValueError(f"{flag} {target} cannot be written: creating {trying} failed ({reason}); "
                         "choose a folder you can write to") from None
    finally:
        for created in reversed(made):
            try:
                created.rmdir()
            except OSError:
                pass


def _check_can_create(path: Path, flag: str) -> None:
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{flag} {path} cannot be created: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path} cannot be written: no write permission in {existing}; choose a folder "
                         "you can write to")


def readable_file(path: str | Path, what: str) -> Path:
    """An existing circuit file; a folder or a missing path is refused, saying which."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.json"))[:5]
        hint = f" (it holds {', '.join(found)})" if found else ""
        raise ValueError(f"{what} {path} is a folder{hint}; give a circuit JSON file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist; give a circuit JSON file")
    return path


def check_task_name(value: str, metric: str = "kl") -> None:
    """A registered task name, or a prompts file that reads cleanly; a TaskError saying what is wrong otherwise.
    A prompts file where only some rows give a wrong answer is refused under `metric` logit_diff, and named in
    a warning (stderr) otherwise."""
    from acdc_compare.tasks.base import TaskError
    from acdc_compare.tasks.prompts_file import is_prompts_file, partial_wrong_answers_note, read_prompts_file
    from acdc_compare.tasks.registry import task_spec

    if not is_prompts_file(value):
        task_spec(value)
        return
    note = partial_wrong_answers_note(read_prompts_file(value))
    if note and metric == "logit_diff":
        raise TaskError(f"--metric logit_diff needs a wrong answer on every row: {note}")
    if note:
        print(f"acdc-compare: warning: {note}", file=sys.stderr, flush=True)


def check_task_args(args: argparse.Namespace, *names: str) -> None:
    """Task names (or prompts files), prompt counts and the device, checked before the model loads."""
    from acdc_compare.backends import check_device

    check_device(args.device)
    for name in names or ("task",):
        check_task_name(getattr(args, name), getattr(args, "metric", "kl"))
    for flag in ("n_prompts", "n"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if getattr(args, "max_memory", None) is not None:
        from acdc_compare.memory import parse_size

        try:
            parse_size(args.max_memory)
        except ValueError as err:
            raise ValueError(f"--max-memory: {err}") from None
