"""`acdc-compare`: discover, compare, convert, sweep, curve, tasks, report, demo, study and attention from the
command line.

This module builds the top-level parser and dispatches to the subcommand modules beside it, each holding its
flags, checks and run. Exit codes: 0 success; 2 bad arguments or input (unknown task, bad threshold, unreadable
file); 3 the model could not be loaded; 130 interrupted (Ctrl-C); 1 any other failure.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from acdc_compare.cli import attention, compare, convert, curve, demo, discover, report, study, sweep, tasks
from acdc_compare.cli.common import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_MODEL, EXIT_OK, EXIT_USAGE, HELP_FORMAT

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_MODEL", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

_SUBCOMMANDS = (discover, compare, convert, sweep, curve, tasks, attention, report, demo, study)


def build_parser() -> argparse.ArgumentParser:
    """The `acdc-compare` parser: --version and one subparser per subcommand, in help order."""
    from acdc_compare import __version__

    parser = argparse.ArgumentParser(prog="acdc-compare", formatter_class=HELP_FORMAT, description="Automated "
                                     "circuit discovery (ACDC, EAP, EAP-IG) on TransformerLens models, compared with "
                                     "known circuits. Exit codes: 0 success, 2 bad arguments or input, 3 the model "
                                     "could not be loaded, 130 interrupted (Ctrl-C), 1 anything else.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _SUBCOMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; its errors become a one-line message on stderr and the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from acdc_compare.backends import ModelLoadError, quiet_loading
    from acdc_compare.files import plain_os_error
    from acdc_compare.tasks.base import TaskError

    args.interrupt_note = "nothing of this run was saved"
    run = {command.NAME: command.run for command in _SUBCOMMANDS}[args.command]
    try:
        with quiet_loading() if getattr(args, "quiet", False) else contextlib.nullcontext():
            return run(args)
    except ModelLoadError as err:
        print(f"acdc-compare: {err}", file=sys.stderr)
        return EXIT_MODEL
    except (ValueError, TaskError, FileNotFoundError, KeyError) as err:
        print(f"acdc-compare: {_message(err)}", file=sys.stderr)
        return EXIT_USAGE
    except (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError) as err:
        print(f"acdc-compare: {plain_os_error(err, 'write')}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        print(f"acdc-compare: {_message(err)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        note = args.interrupt_note
        if getattr(args, "journal_in_use", None) and Path(args.journal_in_use).is_file():
            note = (f"the decisions made so far are saved in {args.journal_in_use}; run the same command again to "
                    f"resume from there: acdc-compare {shlex.join(argv)}")
        print(f"acdc-compare: interrupted; {note}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _message(err: Exception) -> str:
    """The error's text; an operating-system error (one with an errno) in plain words, not "[Errno N] ..."."""
    from acdc_compare.files import plain_os_error

    if isinstance(err, OSError) and err.errno is not None:
        return plain_os_error(err)
    return str(err)
