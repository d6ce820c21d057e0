"""The exceptions of cloudmux.

Every exception cloudmux raises for a storage or protocol failure is a
:class:`Error`. Where Python has a builtin exception that means the same
thing, the cloudmux exception is a subclass of that builtin too, so code
written for the original library (``except FileNotFoundError:``) keeps
working:

================================  ============================  ==========================
cloudmux exception                also a                        when
================================  ============================  ==========================
:class:`NotFoundError`            ``FileNotFoundError``         no such object (or bucket)
:class:`AlreadyExistsError`       ``FileExistsError``           a create-only write found one
:class:`PermissionDeniedError`    ``PermissionError``           credentials refused
:class:`LockTimeoutError`         ``TimeoutError``              a lock not had in time
:class:`InvalidInputError`        ``ValueError``                a malformed URL, path or mux id
:class:`UnsupportedError`         ``NotImplementedError``       the backend cannot do it
:class:`PreconditionError`                                      a compare-and-swap lost, or a
                                                                dataset still in use
:class:`TransientError`                                         retries ran out (timeouts, 5xx)
:class:`OutcomeUnknownError`                                    a write may or may not have
                                                                happened
:class:`FencedError`                                            a lock or lease was taken over
:class:`CorruptError`                                           stored data cannot be decoded
================================  ============================  ==========================

An element that cannot be stored raises the builtin ``TypeError``.

Each exception has the attributes ``kind`` (a short name such as
``"not found"``), ``op`` (the operation, such as ``"get"``) and ``path``
(the URL concerned, or None). Messages never contain credentials.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "Error",
    "NotFoundError",
    "AlreadyExistsError",
    "PermissionDeniedError",
    "LockTimeoutError",
    "InvalidInputError",
    "UnsupportedError",
    "PreconditionError",
    "TransientError",
    "OutcomeUnknownError",
    "FencedError",
    "CorruptError",
]


class Error(Exception):
    """The base of every cloudmux exception.

    Attributes:
        kind: what went wrong, as a short lowercase name (``"not found"``,
            ``"lock timeout"``, ...); ``"error"`` for anything else.
        op: the operation that failed (``"get"``, ``"create"``, ``"lock"``...).
        path: the URL the operation was about, when known.
    """

    kind: str = "error"
    op: Optional[str] = None
    path: Optional[str] = None


class NotFoundError(Error, FileNotFoundError):
    """The object, bucket or container does not exist (a ``FileNotFoundError``)."""

    kind = "not found"


class AlreadyExistsError(Error, FileExistsError):
    """A create-only write found the object already there (a ``FileExistsError``).

    ``write_bytes``, ``write_text`` and ``write_json`` are create-only unless
    called with ``overwrite=True``.
    """

    kind = "already exists"


class PermissionDeniedError(Error, PermissionError):
    """The credentials were refused or lack a permission (a ``PermissionError``)."""

    kind = "permission denied"


class LockTimeoutError(Error, TimeoutError):
    """A lock was not acquired in time (a ``TimeoutError``).

    The message names the holder; so do the attributes.

    Attributes:
        holder: the holder's name (by default ``host/pid/thread``), when known.
        token: the holder's fencing token, when known.
        acquired: when the holder took the lock, in POSIX seconds by its clock.
        expires: when the holder's lease runs out unless renewed, in POSIX seconds.
    """

    kind = "lock timeout"
    holder: Optional[str] = None
    token: Optional[int] = None
    acquired: Optional[float] = None
    expires: Optional[float] = None


class InvalidInputError(Error, ValueError):
    """A URL, path, mux id or option is malformed or not allowed (a ``ValueError``)."""

    kind = "invalid input"


class UnsupportedError(Error, NotImplementedError):
    """The backend or session lacks this capability (a ``NotImplementedError``)."""

    kind = "unsupported"


class PreconditionError(Error):
    """A compare-and-swap found another version, or a dataset is still in use
    (``destroy()`` while sessions run, without ``force=True``)."""

    kind = "precondition failed"


class TransientError(Error):
    """A temporary failure that outlasted the retries (a timeout, a 5xx,
    throttling). Trying again later may succeed."""

    kind = "transient failure"


class OutcomeUnknownError(Error):
    """A conditional write may or may not have taken effect. Never a
    success and never a lost race: read the object back to find out."""

    kind = "outcome unknown"


class FencedError(Error):
    """A newer holder owns the resource: the lock or lease was taken over
    while this process held it (it stalled past its time to live)."""

    kind = "fenced off"


class CorruptError(Error):
    """Stored data could not be decoded (a damaged dataset, manifest or claim)."""

    kind = "corrupt data"
