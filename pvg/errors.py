"""User-facing errors: the CLI turns these into one clear line and exit code 2, no traceback."""


class PvgError(Exception):
    """Bad input a user can fix (a file, a key, a line); the message says what and how."""


# An OSError with one of these numbers is the machine's state, not a bug: a full disk, a read-only file
# system, a quota, a missing permission. The CLI says which file and what to do instead of a traceback.
def _fault_numbers() -> dict[int, str]:
    import errno

    return {errno.ENOSPC: "the disk is full: free some space or write somewhere else",
            errno.EDQUOT: "the disk quota is used up: free some space or write somewhere else",
            errno.EFBIG: "the file is larger than this file system allows: write somewhere else",
            errno.EROFS: "the file system is read-only: write somewhere else",
            errno.EACCES: "permission denied: check the file's and its folder's permissions, or write somewhere else",
            errno.EPERM: "not permitted: check the file's and its folder's permissions, or write somewhere else"}


def fault_error(e: BaseException, output=None) -> PvgError | None:
    """The PvgError for a disk or permission fault (an OSError, or a library error carrying an OS error
    code, as safetensors' `IoError(Os { code: 28, ... })` or `(os error 28)`), else None: anything else
    stays a bug."""
    import re

    faults = _fault_numbers()
    code = e.errno if isinstance(e, OSError) else None
    if code is None:
        # safetensors' two spellings: `IoError(Os { code: 28, ... })` and `... (os error 28)`
        m = re.search(r"Os \{ code: (\d+)", str(e)) or re.search(r"\(os error (\d+)\)", str(e))
        code = int(m.group(1)) if m else None
    if code not in faults:
        return None
    where = getattr(e, "filename", None) or output
    strerror = getattr(e, "strerror", None) or os_strerror(code)
    return PvgError(f"cannot write {where}: {strerror}; {faults[code]}" if where else
                    f"a write failed: {strerror}; {faults[code]}")


def os_strerror(code: int) -> str:
    import os

    return os.strerror(code)
