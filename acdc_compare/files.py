"""Writing result files safely: readers see either the old file or the whole new one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PathLike = str | os.PathLike[str]


def atomic_write(path: Path, data: bytes) -> None:
    """Write bytes so that readers see either the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
