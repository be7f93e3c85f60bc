"""Writing result files safely: readers see either the old file or the whole new one."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

PathLike = str | os.PathLike[str]


def atomic_write(path: Path, data: bytes) -> None:
    """Write bytes so that readers see either the old file or the whole new one. The file gets the mode
    a plain `open` would give it (0666 less the user's umask; an existing file keeps its mode), not
    mkstemp's private 0600. Errors name `path`, never the temporary file."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise type(err)(err.errno, err.strerror, str(path)) from None
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_PLAIN_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "the operation is not permitted there",
    errno.ENOENT: "no such file or folder",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EISDIR: "it is a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "something already exists there",
    errno.ENAMETOOLONG: "the name is too long",
}


def plain_os_error(err: OSError, doing: str = "use") -> str:
    """One plain sentence for an operating-system error: which path, what went wrong, what to do; never bare
    "[Errno N]" text. `doing` is the verb, e.g. "write" or "read"."""
    reason = plain_reason(err)
    where = f" {err.filename}" if err.filename is not None else ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some space, or choose a folder on another disk"
    elif err.errno == errno.ENOENT and doing == "read":
        fix = "check the path"
    else:
        fix = "choose a path you can write to"
    return f"cannot {doing}{where}: {reason}; {fix}"


def plain_reason(err: OSError) -> str:
    """What went wrong, in words ("permission denied", "the disk is full"), without the errno number."""
    return _PLAIN_REASONS.get(err.errno or -1, (err.strerror or str(err)).lower())
