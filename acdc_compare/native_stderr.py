"""Lines that native libraries write straight to file descriptor 2, filtered: Graphviz's Fontconfig warns about
the system's font configuration (e.g. 'Fontconfig warning: ... unknown element "reset-dirs"') on every
process's first drawing, a warning about the machine, not the drawing; every other line is passed on."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

DROPPED_PREFIXES = ("Fontconfig warning:",)


@contextmanager
def fontconfig_warnings_dropped() -> Iterator[None]:
    """Run the block with fd 2 captured, then write what it wrote there, less the lines that start with
    DROPPED_PREFIXES, to the real fd 2 (errors, including Fontconfig's, are kept). Without a usable fd 2 the
    block runs unfiltered."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True)
                    if not line.decode("utf-8", "replace").startswith(DROPPED_PREFIXES)]
            if kept:
                os.write(2, b"".join(kept))
