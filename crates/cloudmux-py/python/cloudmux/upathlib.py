"""Paths over local disk and cloud object storage, with a lock.

This module follows the ``upathlib`` of the original library (``cloudly``):
the same classes, methods and argument names, so that code written for it
needs only its import lines changed. Under it is cloudmux's Rust core:
every request runs with the GIL released, and writes and the lock use the
stores' conditional requests (create-if-absent, compare-and-swap).

>>> from cloudmux.upathlib import LocalUpath
>>> p = LocalUpath('/tmp/cloudmux-doc/data.txt')
>>> p.rmrf()
0
>>> p.write_text('abc')
>>> p.read_text()
'abc'
>>> p.write_text('again')
Traceback (most recent call last):
...
cloudmux.errors.AlreadyExistsError: create file:///tmp/cloudmux-doc/data.txt: already exists
>>> p.write_text('again', overwrite=True)
>>> with p.lock(timeout=10) as lock:
...     n = lock.fencing_token   # grows with every acquisition
>>> p.parent.rmrf()
1

Where the original and the Rust API differ, this module follows the
original:

- ``dst.copy_file(src)`` and ``dst.copy_dir(src)`` are called on the
  *target* (the Rust API copies ``src.copy_file(dst)``); a ``str`` source is
  relative to the target's parent.
- ``remove_dir()`` removes everything below the directory and returns the
  count (the Rust ``remove_dir`` only removes an empty directory).
- ``file_info()`` returns ``None`` for a missing file (the Rust call fails).
- ``remove_file()`` raises ``FileNotFoundError`` for a missing file unless
  ``missing_ok=True`` (the Rust call succeeds).
- ``parent`` of the root is the root, and ``joinpath`` normalises ``..``
  and absolute segments as ``os.path.join`` does (the Rust API refuses them).

And where it differs from the original, it says so on the method: the lock
(a ``Lock`` with a fencing token, renewed in the background, not
re-entrant), ``file_info`` on object stores (no creation time), JSON by the
standard ``json`` module.

URLs: ``LocalUpath('/abs/path')``; ``S3Upath('s3://bucket/key')``;
``GcsBlobUpath('gs://bucket/key')``; ``AzureBlobUpath('az://account/container/key')``
or ``https://account.blob.core.windows.net/container/key``.
Credentials come from the environment as for the ``cloudmux`` command
(the AWS chain, Application Default Credentials, ``AZURE_STORAGE_CONNECTION_STRING``...).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import pickle as _pickle
import posixpath
import socket
import threading
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Tuple, TypeVar, Union

from . import _native
from .errors import FencedError

__all__ = [
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
]

#: Default seconds to wait for a lock, as in the original library.
DEFAULT_LOCK_TIMEOUT = 60.0
#: Default seconds a held lock lives without renewal (it is renewed every
#: third of that while held).
DEFAULT_LOCK_TTL = 60.0

P = TypeVar("P", bound="Upath")


def default_holder() -> str:
    """The default name of a lock holder or worker: ``host/pid/thread``,
    plus ``/task=N`` when a batch platform (AWS Batch array jobs, Cloud Run
    jobs, Kubernetes indexed jobs) sets a task index."""
    name = f"{socket.gethostname() or 'localhost'}/{os.getpid()}/{threading.current_thread().name}"
    for var in _native.task_index_vars():
        v = os.environ.get(var, "").strip()
        if v:
            name += f"/task={v}"
            break
    return name


@dataclass
class FileInfo:
    """What :meth:`Upath.file_info` reports about a file.

    Object stores keep no creation time: ``ctime`` and ``time_created``
    are the last modification time there (and on local disk too, where the
    original library reported the inode change time).
    """

    ctime: float  #: Creation time as a POSIX timestamp (see above).
    mtime: float  #: Last modification time as a POSIX timestamp.
    time_created: datetime.datetime  #: ``ctime`` as a UTC ``datetime``.
    time_modified: datetime.datetime  #: ``mtime`` as a UTC ``datetime``.
    size: int  #: In bytes.
    details: Any  #: ``{"version": <the store's version token>}``.


class Lock:
    """The lock on a path, from :meth:`Upath.lock`; use it with ``with``.

    Entering acquires the lock (the object ``<path>.lock`` next to the
    path), waiting up to ``timeout`` seconds; a lock not had in time raises
    :class:`~cloudmux.errors.LockTimeoutError`, a ``TimeoutError`` that
    names the holder. While held, the lock is renewed in the background
    every third of its ``ttl``; a holder that dies stops renewing, and the
    lock can be taken over one ``ttl`` later. Leaving releases it.

    ``with p.lock() as lock:`` binds this object (the original library bound
    the path: use ``lock.path``). Its :attr:`fencing_token` grows with every
    acquisition of the lock: pass it along with what you write under the
    lock, so that a holder that stalled past its ``ttl`` and lost the lock
    can be told apart from its successor.

    Not re-entrant: taking the same lock again while holding it waits for
    the first hold to end. A lock taken before ``fork`` belongs to the parent;
    a child neither holds nor releases it.
    """

    def __init__(self, path: Upath, timeout: float, ttl: float, holder: Optional[str]):
        self._path = path
        self._timeout = float(timeout)
        self._ttl = float(ttl)
        self._holder = holder
        self._held: Optional[_native.Lock] = None
        self._token: Optional[int] = None

    @property
    def path(self) -> Upath:
        """The path this lock is on."""
        return self._path

    @property
    def fencing_token(self) -> int:
        """The fencing token of the current (or last) acquisition.

        Raises ``RuntimeError`` before the lock was first acquired.
        """
        if self._token is None:
            raise RuntimeError("the lock has not been acquired")
        return self._token

    @property
    def holder(self) -> Optional[str]:
        """The holder name recorded in the lock, once acquired."""
        return self._held.holder if self._held is not None else self._holder

    @property
    def is_held(self) -> bool:
        """True while acquired and not lost to another holder."""
        return self._held is not None and self._held.is_held

    def acquire(self) -> Lock:
        """Acquires the lock (what ``with`` does on entry); returns self."""
        if self._held is not None:
            raise RuntimeError("this Lock object is already held")
        holder = self._holder or default_holder()
        self._held = self._path._n().lock(self._timeout, self._ttl, holder)
        self._token = self._held.fencing_token
        return self

    def release(self) -> None:
        """Releases the lock (what ``with`` does on exit).

        Raises :class:`~cloudmux.errors.FencedError` when the lock had
        expired and was taken over by another holder meanwhile.
        """
        held, self._held = self._held, None
        if held is not None:
            held.release()

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.release()
        except FencedError:
            # A lost lock is worth an exception only when nothing else is
            # already going wrong in the block.
            if exc_type is None:
                raise

    def __repr__(self) -> str:
        state = f"held, fencing_token={self._token}" if self.is_held else "not held"
        return f"Lock({self._path!r}, {state})"


def _rebuild(cls: type, root: str, path: str) -> Upath:
    obj = cls.__new__(cls)
    obj._set(root, path)
    return obj


class Upath:
    """A path on local disk or in an object store (the base class).

    Use a subclass: :class:`LocalUpath`, :class:`S3Upath`,
    :class:`GcsBlobUpath`, :class:`AzureBlobUpath`, or :func:`resolve_path`.
    A path is an absolute, normalised ``/``-separated string below a root
    (``/`` on disk, a bucket or container in the cloud). Paths compare,
    sort and hash by :meth:`as_uri`, and pickle (to another process) by
    their URL; nothing about storage is checked until a request is made.
    """

    #: The URL scheme of the class (``"file"``, ``"s3"``, ``"gs"``, ``"az"``).
    scheme: str = ""

    _root: str
    _path: str
    _native: Optional[_native.Path]

    def __init__(self, *pathsegments: str):
        raise TypeError(
            "Upath is abstract: use LocalUpath, S3Upath, GcsBlobUpath, AzureBlobUpath "
            "or resolve_path()"
        )

    def _set(self, root: str, path: str) -> None:
        self._root = root
        self._path = posixpath.normpath("/" + path.lstrip("/"))
        self._native = None

    def _n(self) -> _native.Path:
        """The native path (made on first use)."""
        if self._native is None:
            self._native = _native.Path(self._url())
        return self._native

    def _url(self) -> str:
        """The URL handed to the native layer."""
        if self._path == "/":
            return self._root
        return self._root + self._path

    def _with_path(self: P, path: str) -> P:
        return _rebuild(type(self), self._root, path)  # type: ignore[return-value]

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_rebuild, (type(self), self._root, self._path))

    # ---- names ----

    def as_uri(self) -> str:
        """The path as a URI (``file:///a/b``, ``s3://bucket/a/b``)."""
        return self._root + self._path

    def __str__(self) -> str:
        return self.as_uri()

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self}')"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.as_uri() == other.as_uri()  # type: ignore[attr-defined]

    def __lt__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.as_uri() < other.as_uri()  # type: ignore[attr-defined]

    def __le__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.as_uri() <= other.as_uri()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self.as_uri())

    def __truediv__(self: P, key: str) -> P:
        """``path / 'a/b'``: :meth:`joinpath`."""
        return self.joinpath(key)

    @property
    def path(self) -> pathlib.PurePath:
        """The path below the root as a ``pathlib.PurePosixPath``."""
        return pathlib.PurePosixPath(self._path)

    @property
    def name(self) -> str:
        """The final component (empty at the root)."""
        return posixpath.basename(self._path)

    @property
    def stem(self) -> str:
        """The final component without its last suffix."""
        return pathlib.PurePosixPath(self._path).stem

    @property
    def suffix(self) -> str:
        """The last suffix of the final component (``'.gz'``), or ``''``."""
        return pathlib.PurePosixPath(self._path).suffix

    @property
    def suffixes(self) -> List[str]:
        """Every suffix of the final component (``['.tar', '.gz']``)."""
        return pathlib.PurePosixPath(self._path).suffixes

    @property
    def parent(self: P) -> P:
        """The parent directory; the parent of the root is the root."""
        return self._with_path(posixpath.dirname(self._path))

    @property
    def root(self: P) -> P:
        """The root of the same store (``/``, the bucket, the container)."""
        return self._with_path("/")

    def joinpath(self: P, *other: str) -> P:
        """This path joined with more segments, as ``os.path.join`` joins them:
        an absolute segment starts again at the root, and ``..`` is
        normalised away."""
        return self._with_path(posixpath.join(self._path, *[str(o) for o in other]))

    def with_name(self: P, name: str) -> P:
        """The same directory with another final component; ``ValueError``
        at the root."""
        return self._with_path(str(pathlib.PurePosixPath(self._path).with_name(name)))

    def with_stem(self: P, stem: str) -> P:
        """The same path with another stem (the suffix kept)."""
        return self.with_name(stem + self.suffix)

    def with_suffix(self: P, suffix: str) -> P:
        """The same path with the last suffix replaced (``''`` removes it)."""
        return self._with_path(str(pathlib.PurePosixPath(self._path).with_suffix(suffix)))

    # ---- querying ----

    def exists(self) -> bool:
        """True when the path is an existing file or directory."""
        return self._n().exists()

    def is_file(self) -> bool:
        """True when an object (file) exists at this path."""
        return self._n().is_file()

    def is_dir(self) -> bool:
        """True when objects exist below this path. Object stores have no
        empty directories; neither does this API on local disk (an empty
        directory does not count)."""
        return self._n().is_dir()

    def file_info(self) -> Optional[FileInfo]:
        """Size and modification time of the file, or ``None`` when there is
        no file here (as in the original library)."""
        info = self._n().file_info()
        if info is None:
            return None
        size, mtime, version = info
        t = datetime.datetime.fromtimestamp(mtime, tz=datetime.timezone.utc)
        return FileInfo(
            ctime=mtime,
            mtime=mtime,
            time_created=t,
            time_modified=t,
            size=size,
            details={"version": version},
        )

    # ---- reading and writing ----

    def read_bytes(self) -> bytes:
        """The file's content; ``FileNotFoundError`` when there is none."""
        return self._n().read_bytes()

    def write_bytes(self, data: Any, *, overwrite: bool = False) -> None:
        """Writes ``data`` (bytes-like, or a binary file object positioned at
        its start) to this file. Create-only unless ``overwrite``: an
        existing file raises ``FileExistsError``. Parent directories come
        into being as needed. Readers never see a partial file."""
        if hasattr(data, "read") and not isinstance(data, (bytes, bytearray, memoryview)):
            data = data.read()
        self._n().write_bytes(bytes(data), overwrite)

    def read_text(self, *, encoding: Optional[str] = None, errors: Optional[str] = None) -> str:
        """The file's content decoded (UTF-8 by default)."""
        return self.read_bytes().decode(encoding or "utf-8", errors or "strict")

    def write_text(
        self,
        data: str,
        *,
        overwrite: bool = False,
        encoding: Optional[str] = None,
        errors: Optional[str] = None,
    ) -> None:
        """Writes text (UTF-8 by default); create-only unless ``overwrite``."""
        self.write_bytes(data.encode(encoding or "utf-8", errors or "strict"), overwrite=overwrite)

    def read_json(self, **kwargs: Any) -> Any:
        """The file decoded as JSON (``json.loads`` with ``kwargs``)."""
        return json.loads(self.read_bytes(), **kwargs)

    def write_json(self, data: Any, *, overwrite: bool = False, **kwargs: Any) -> None:
        """Writes ``data`` as JSON (``json.dumps`` with ``kwargs``; the
        original library used orjson); create-only unless ``overwrite``."""
        self.write_bytes(json.dumps(data, **kwargs).encode("utf-8"), overwrite=overwrite)

    def read_pickle(self, **kwargs: Any) -> Any:
        """The file unpickled. Unpickling runs code the file names: read
        only what you trust."""
        return _pickle.loads(self.read_bytes(), **kwargs)

    def write_pickle(self, data: Any, *, overwrite: bool = False, **kwargs: Any) -> None:
        """Writes ``data`` pickled; create-only unless ``overwrite``."""
        self.write_bytes(_pickle.dumps(data, **kwargs), overwrite=overwrite)

    # ---- listing ----

    def _pages(self, recursive: bool) -> Iterator[Tuple[List[str], List[str]]]:
        token: Optional[str] = None
        while True:
            objects, prefixes, token = self._n().list_page(recursive, token)
            yield objects, prefixes
            if token is None:
                return

    def iterdir(self: P) -> Iterator[P]:
        """The immediate children (files and directories), page by page.
        Nothing is yielded for a file or a missing directory."""
        for objects, prefixes in self._pages(False):
            for key in sorted(objects + prefixes):
                yield self._with_path("/" + key)

    def ls(self: P) -> List[P]:
        """The immediate children, sorted."""
        return sorted(self.iterdir())

    def riterdir(self: P) -> Iterator[P]:
        """Every file below this directory, recursively, page by page."""
        for objects, _ in self._pages(True):
            for key in objects:
                yield self._with_path("/" + key)

    # ---- removing ----

    def remove_file(self, missing_ok: bool = False) -> None:
        """Deletes this file; ``FileNotFoundError`` when there is none,
        unless ``missing_ok``."""
        self._n().remove_file(missing_ok)

    def remove_dir(self, *, quiet: bool = True, concurrent: bool = True) -> int:
        """Deletes every file below this directory, recursively, and returns
        how many (as in the original library; ``quiet`` and ``concurrent``
        are accepted for compatibility: deletes always run 16 at a time)."""
        return self._n().remove_below()

    def rmrf(self, *, quiet: bool = True, concurrent: bool = False) -> int:
        """Deletes this file and everything below this directory, like
        ``rm -rf``; returns how many files were deleted (0 when nothing was
        there). Refused at the root (``ValueError``)."""
        if self._path == "/":
            raise ValueError(f"rmrf is not allowed on the root {self!r}")
        return self._n().rmrf()

    # ---- copying ----

    def _source(self: P, source: Union[str, Upath]) -> Upath:
        if isinstance(source, str):
            return self.parent / source
        if not isinstance(source, Upath):
            raise TypeError(f"source must be a str or a Upath, not {type(source).__name__}")
        return source

    def copy_file(self, source: Union[str, Upath], *, overwrite: bool = False) -> None:
        """Copies the file ``source`` to this path (called on the *target*,
        as in the original library). A ``str`` source is in the same store,
        relative to this path's parent (or absolute). ``FileNotFoundError``
        when the source is missing; ``FileExistsError`` when this file exists
        and not ``overwrite``."""
        src = self._source(source)
        if src == self:
            return
        src._n().copy_file_to(self._n(), overwrite)

    def copy_dir(
        self,
        source: Union[str, Upath],
        *,
        overwrite: bool = False,
        quiet: bool = False,
        concurrent: bool = True,
    ) -> int:
        """Copies every file below the directory ``source`` to the same
        relative paths below this directory (called on the *target*, as in
        the original library) and returns how many. Files here without a
        counterpart stay. ``overwrite`` applies file by file."""
        src = self._source(source)
        if src == self:
            return 0
        return src._n().copy_dir_to(self._n(), overwrite)

    # ---- locking ----

    def lock(
        self,
        *,
        timeout: Optional[float] = None,
        ttl: Optional[float] = None,
        holder: Optional[str] = None,
    ) -> Lock:
        """The lock on this path, to use with ``with`` (see :class:`Lock`).

        ``timeout``: seconds to wait for it (default 60; 0 makes exactly one
        attempt). ``ttl``: seconds it lives without renewal (default 60);
        it is renewed every third of that while held, so only a dead or
        stalled holder loses it. ``holder``: the name recorded in the lock
        (default ``host/pid/thread``).
        """
        return Lock(
            self,
            DEFAULT_LOCK_TIMEOUT if timeout is None else timeout,
            DEFAULT_LOCK_TTL if ttl is None else ttl,
            holder,
        )


class LocalUpath(Upath, os.PathLike):
    """A path on the local file system; also an ``os.PathLike``.

    ``LocalUpath(*pathsegments)`` takes what ``pathlib.Path`` takes; a
    relative path is made absolute against the current directory, and no
    segment at all means the current directory. Writes are atomic (a
    temporary file, then ``link``), so processes on one machine share a
    directory safely; for several machines use an object store.
    """

    scheme = "file"

    def __init__(self, *pathsegments: Union[str, os.PathLike]):
        self._set("", str(pathlib.Path(*pathsegments).absolute()))

    def _url(self) -> str:
        return self._path

    def as_uri(self) -> str:
        """The path as a ``file://`` URI."""
        return pathlib.PurePosixPath(self._path).as_uri()

    def __str__(self) -> str:
        return self._path

    def __fspath__(self) -> str:
        return self._path

    @property
    def path(self) -> pathlib.Path:
        """The path as a ``pathlib.Path``."""
        return pathlib.Path(self._path)


class BlobUpath(Upath):
    """A path in a cloud object store (the base of the cloud classes).

    An object store has no directories: ``a/b`` is a directory when some
    object's name starts with ``a/b/``, and a path can be both a file and a
    directory (better avoided).
    """

    @property
    def blob_name(self) -> str:
        """The object's name in its bucket or container (no leading ``/``)."""
        return self._path.lstrip("/")

    def _init_blob(self, paths: Tuple[str, ...], container: Optional[str], kw: str) -> None:
        prefix = f"{self.scheme}://"
        if container is None:
            if not paths or not str(paths[0]).startswith(prefix):
                raise ValueError(
                    f"{type(self).__name__} needs a URL starting with {prefix!r}, "
                    f"or {kw}= and a path"
                )
            rest = str(paths[0])[len(prefix) :]
            head, _, tail = rest.partition("/")
            if not head:
                raise ValueError(f"no bucket in {paths[0]!r}")
            root = prefix + head
            segs: Tuple[str, ...] = ("/" + tail,) + tuple(str(p) for p in paths[1:])
        else:
            if not container:
                raise ValueError(f"{kw} must not be empty")
            root = prefix + container
            segs = tuple(str(p) for p in paths)
        self._set(root, posixpath.join("/", *segs))


class S3Upath(BlobUpath):
    """A path in Amazon S3 or an S3-compatible store.

    ``S3Upath('s3://bucket/a/b')``, ``S3Upath('s3://bucket', 'a', 'b')`` or
    ``S3Upath('a', 'b', bucket_name='bucket')``. Credentials and region come
    from the standard AWS chain; ``AWS_ENDPOINT_URL_S3`` or
    ``AWS_ENDPOINT_URL`` point it at an S3-compatible store.
    """

    scheme = "s3"

    def __init__(self, *paths: str, bucket_name: Optional[str] = None):
        self._init_blob(paths, bucket_name, "bucket_name")

    @property
    def bucket_name(self) -> str:
        """The bucket."""
        return self._root[len("s3://") :]


class GcsBlobUpath(BlobUpath):
    """A path in Google Cloud Storage.

    ``GcsBlobUpath('gs://bucket/a/b')``, ``GcsBlobUpath('gs://bucket', 'a')``
    or ``GcsBlobUpath('a', 'b', bucket_name='bucket')``, as in the original
    library. Credentials are Application Default Credentials;
    ``STORAGE_EMULATOR_HOST`` points it at fake-gcs-server.
    """

    scheme = "gs"

    def __init__(self, *paths: str, bucket_name: Optional[str] = None):
        self._init_blob(paths, bucket_name, "bucket_name")

    @property
    def bucket_name(self) -> str:
        """The bucket."""
        return self._root[len("gs://") :]


class AzureBlobUpath(BlobUpath):
    """A path in Azure Blob Storage.

    ``AzureBlobUpath('az://account/container/a/b')``,
    ``AzureBlobUpath('https://account.blob.core.windows.net/container/a/b')``
    (the original library's form), an Azurite URL
    (``http://127.0.0.1:10000/devstoreaccount1/container/a``), or
    ``AzureBlobUpath('a', 'b', container_name='container', account_name='account')``.
    Credentials: ``AZURE_STORAGE_CONNECTION_STRING``,
    ``AZURE_STORAGE_SAS_TOKEN``, else Entra ID.
    """

    scheme = "az"

    def __init__(
        self,
        *paths: str,
        container_name: Optional[str] = None,
        account_name: Optional[str] = None,
    ):
        if container_name is not None:
            if not account_name:
                raise ValueError("container_name needs account_name too")
            self._init_blob(paths, f"{account_name}/{container_name}", "container_name")
            return
        if paths and str(paths[0]).startswith(("https://", "http://")):
            # The backend knows the blob-endpoint and emulator spellings.
            url = _native.Path(str(paths[0])).resolved_url()
            paths = (url,) + tuple(paths[1:])
        if paths and str(paths[0]).startswith("az://"):
            rest = str(paths[0])[len("az://") :]
            parts = rest.split("/", 2)
            if len(parts) < 2 or not parts[0] or not parts[1]:
                raise ValueError(f"expected az://account/container/..., not {paths[0]!r}")
            root = f"az://{parts[0]}/{parts[1]}"
            tail = "/" + (parts[2] if len(parts) > 2 else "")
            self._set(root, posixpath.join("/", tail, *[str(p) for p in paths[1:]]))
            return
        raise ValueError(
            "AzureBlobUpath needs an az:// or https:// URL, or container_name= and account_name="
        )

    @property
    def account_name(self) -> str:
        """The storage account."""
        return self._root[len("az://") :].split("/", 1)[0]

    @property
    def container_name(self) -> str:
        """The container."""
        return self._root[len("az://") :].split("/", 1)[1]


#: What functions that take a path accept.
PathType = Union[str, pathlib.Path, Upath]


def resolve_path(path: PathType) -> Upath:
    """A :class:`Upath` for a URL string, a ``pathlib.Path`` or a ``Upath``.

    ``s3://``, ``gs://``, ``az://`` and Azure ``https://`` URLs give the cloud
    classes; ``file://`` URLs and plain strings give a :class:`LocalUpath`
    (relative to the current directory, symlinks resolved as in the original
    library); a ``Upath`` is returned as is. Other URLs raise ``ValueError``.
    """
    if isinstance(path, Upath):
        return path
    if isinstance(path, pathlib.PurePath):
        return LocalUpath(str(pathlib.Path(path).resolve().absolute()))
    if not isinstance(path, str):
        raise TypeError(f"expected str, pathlib.Path or Upath, not {type(path).__name__}")
    if path.startswith("s3://"):
        return S3Upath(path)
    if path.startswith("gs://"):
        return GcsBlobUpath(path)
    if path.startswith(("az://", "https://", "http://")):
        return AzureBlobUpath(path)
    if path.startswith("file://"):
        rest = path[len("file://") :]
        if not rest.startswith("/"):
            raise ValueError(f"a file:// URL needs an absolute path (file:///dir), not {path!r}")
        return LocalUpath(rest)
    if "://" in path:
        scheme = path.split("://", 1)[0]
        raise ValueError(f"the URL scheme {scheme!r} is not supported (in {path!r})")
    return LocalUpath(str(pathlib.Path(path).resolve().absolute()))

