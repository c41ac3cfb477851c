"""The project's own exception types: errors a user can cause, with messages that name the fix."""

from __future__ import annotations


class XmodalError(Exception):
    """Base class of every error xmodal raises on purpose."""


class ConfigError(XmodalError, ValueError):
    """A config file, override or CLI argument is wrong (unknown key, wrong type, bad choice)."""


class RecordError(XmodalError, ValueError):
    """One input file (ECG record, DICOM) cannot be used. The message names the file and the reason."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # raised in a Ray worker, it reaches the driver intact
        return type(self), (self.path, self.reason)


class ManifestError(XmodalError, ValueError):
    """A cohort manifest (or the CSVs it is built from) is malformed or unusable."""


class SearchError(XmodalError, ValueError):
    """A search cannot start as asked (unknown pathology, bad space key, empty split...)."""


class ResourceError(XmodalError, RuntimeError):
    """A stage needs more memory than a Train worker has: refused before training by the estimate, or a
    worker was killed for memory. The message is one line (the stage, the numbers, the fix); ``detail``
    holds what the one line leaves out (Ray's full worker error), for the log file it names."""

    def __init__(self, message: str, detail: str = ""):
        self.detail = detail
        super().__init__(message)

    def __reduce__(self):  # raised in Ray Train's controller, it reaches the driver intact
        return type(self), (self.args[0], self.detail)


def user_error(err: BaseException | None) -> XmodalError | None:
    """The xmodal error behind ``err``, when one is what stopped it: Ray wraps an error raised in a
    worker (``RayTaskError.cause``, Ray Train's ``worker_failures``/``controller_failure``)."""
    stack, seen = [err], set()
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, XmodalError) and getattr(e, "cause", None) is None:  # not Ray's RayTaskError(XmodalError)
            return e
        stack += [getattr(e, "cause", None), getattr(e, "controller_failure", None), e.__cause__, e.__context__]
        stack += list(getattr(e, "worker_failures", {}).values())
    return None


def exit_code(command, *args) -> int:
    """Run a command line's ``command(*args)``; an :class:`XmodalError` prints one line (``error: ...``)
    to stderr and gives exit status 2, with no traceback."""
    import sys

    try:
        return command(*args)
    except XmodalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
