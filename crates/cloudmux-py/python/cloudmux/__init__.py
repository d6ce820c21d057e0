"""cloudmux for Python: hand out the elements of a dataset to a fleet of
workers through object storage alone (S3, GCS, Azure Blob, a local
directory), each element to exactly one worker, with no server.

The modules mirror the original library's (``cloudly``):

- :mod:`cloudmux.upathlib`: paths over local disk and object stores
  (:class:`LocalUpath`, :class:`S3Upath`, :class:`GcsBlobUpath`,
  :class:`AzureBlobUpath`, :func:`resolve_path`) with a lock;
- :mod:`cloudmux.multiplexer`: the :class:`Multiplexer`;
- :mod:`cloudmux.errors`: the exceptions (:class:`Error` and its subclasses,
  which are also the matching builtins such as ``FileNotFoundError``).

The main names are also available here: ``from cloudmux import Multiplexer``.
"""

from . import errors, multiplexer, upathlib
from ._native import __version__
from .errors import (
    AlreadyExistsError,
    CorruptError,
    Error,
    FencedError,
    InvalidInputError,
    LockTimeoutError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    PreconditionError,
    TransientError,
    UnsupportedError,
)
from .multiplexer import Multiplexer, Task
from .upathlib import (
    AzureBlobUpath,
    BlobUpath,
    FileInfo,
    GcsBlobUpath,
    LocalUpath,
    Lock,
    PathType,
    S3Upath,
    Upath,
    resolve_path,
)

__all__ = [
    "__version__",
    "errors",
    "multiplexer",
    "upathlib",
    "Multiplexer",
    "Task",
    "Upath",
    "LocalUpath",
    "BlobUpath",
    "S3Upath",
    "GcsBlobUpath",
    "AzureBlobUpath",
    "FileInfo",
    "Lock",
    "PathType",
    "resolve_path",
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
