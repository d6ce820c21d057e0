"""Hand out the elements of a dataset to many workers, each exactly once.

This module follows the ``Multiplexer`` of the original library
(``cloudly.util.multiplexer``): the coordinator stores a modest list of
control parameters with :meth:`Multiplexer.new` and starts a read session
with :meth:`~Multiplexer.create_read_session`; each worker, on any machine,
iterates ``Multiplexer(mux_id)``, and each element goes to exactly one of
them. Only the import lines of code written for the original change::

    from cloudmux.upathlib import LocalUpath
    from cloudmux.multiplexer import Multiplexer

    p = LocalUpath('/tmp/abc/mux')
    p.rmrf()
    hyper = Multiplexer.new(range(20), p)
    mux_id = hyper.create_read_session()

    # in each worker (a process, a machine):
    for x in Multiplexer(mux_id):
        ...

    hyper.done(mux_id)   # True once every element was handed out
    hyper.destroy()

Underneath is cloudmux's protocol, not the original's: there is no shared
counter rewritten under a lock, but one create-if-absent object per element
(``claims/<i>``), so workers do not queue behind each other, and the
dataset is one MessagePack file that Python workers, Rust workers and
``cloudmux work`` processes all read: a session may mix them.

Elements
--------
Elements are stored as MessagePack: ``None``, ``bool``, ``int`` (64 bits),
``float``, ``str``, ``bytes``, ``list``, ``tuple`` (handed out as a list)
and ``dict`` (with scalar keys), nested as you like. Anything else raises
``TypeError`` naming the element, before anything is written.

``Multiplexer.new(data, path, pickle=True)`` stores any picklable object
instead, for Python workers that also pass ``pickle=True``.

.. warning::
   A worker in pickle mode runs ``pickle.loads`` on what it reads from the
   bucket, and unpickling runs whatever code the data names: anyone who can
   write to the bucket can then run code on every worker. Use pickle mode
   only with storage that only you can write to. Workers refuse pickled
   elements unless given ``pickle=True`` themselves.

Sessions
--------
A default session hands out each element once; an element whose worker
dies is lost (as in the original). A leased session,
``create_read_session(lease=60)``, is crash-safe: a worker holds each
element under a lease renewed in the background and acknowledges it when
it asks for the next one; an element whose worker died is handed out again
after the lease, up to ``max_attempts`` times. Iterate :meth:`Multiplexer.tasks`
to acknowledge or fail elements yourself.

Processes
---------
Workers started by ``multiprocessing`` work with every start method:
``fork`` (a child opens its own storage clients and runtime, and never uses
its parent's), ``spawn`` and ``forkserver``. A ``Multiplexer`` pickles as
its mux id and options.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from . import _native
from .upathlib import PathType, Upath, default_holder, resolve_path

__all__ = ["Multiplexer", "Task"]

#: A handed-out element with its lease (see :meth:`Multiplexer.tasks`).
Task = _native.Task


def _dataset_url(path: PathType) -> str:
    if isinstance(path, Upath):
        return path._url()
    return resolve_path(path)._url()


class Multiplexer(Iterable[Any]):
    """A dataset whose elements are handed out to workers, each exactly once.

    ``Multiplexer(mux_id)`` joins the read session ``mux_id`` (the string
    :meth:`create_read_session` returned) as a worker; iterate it to obtain
    elements. It can also do what a coordinator does (``len``,
    :meth:`stat`, :meth:`done`, :meth:`destroy`) on its dataset.

    Args:
        mux_id: the session's id, ``cmx1:<session>@<dataset URL>``; a
            malformed one raises ``ValueError``.
        worker_id: the name recorded in this worker's claims (default
            ``host/pid/thread``).
        timeout: seconds allowed for each storage request before it is
            retried (default: no limit). The original library used this as
            the lock timeout; no lock is taken here.
        pickle: unpickle elements stored with ``pickle=True`` (see the
            module docs' warning); otherwise they raise ``cloudmux.Error``.
        shard: ``(i, n)``: this is worker ``i`` of ``n`` (``0 <= i < n``),
            which starts at element ``i * len / n`` instead of a random one,
            so that workers meet only where their slices end (fewer lost
            races and listings). A hint: any mix of values still gives each
            element to exactly one worker. Default: ``CLOUDMUX_SHARD=i/n``
            from the environment (a platform's task index is not read: the
            workers of one task's pool would all start at one place).
    """

    def __init__(
        self,
        mux_id: str,
        worker_id: Optional[str] = None,
        timeout: Optional[float] = None,
        *,
        pickle: bool = False,
        shard: Optional[Tuple[int, int]] = None,
    ):
        session, url = _native.parse_mux_id(mux_id)
        if shard is not None:
            i, n = shard
            if not (isinstance(i, int) and isinstance(n, int)) or not 0 <= i < n:
                raise ValueError(f"shard must be (i, n) with 0 <= i < n, not {shard!r}")
            shard = (i, n)
        self._setup(url, mux_id, worker_id, timeout, pickle)
        self._shard = shard

    def _setup(
        self,
        url: str,
        mux_id: Optional[str],
        worker_id: Optional[str],
        timeout: Optional[float],
        pickle: bool,
    ) -> None:
        self._url = url
        self._mux_id = mux_id
        self._worker_id = worker_id
        self._timeout = timeout
        self._pickle = pickle
        self._shard: Optional[Tuple[int, int]] = None
        self._dataset: Optional[_native.Dataset] = None
        # By manual_ack: (pid, worker), so that a forked child makes its own.
        self._workers: Dict[bool, Tuple[int, _native.Worker]] = {}

    @classmethod
    def new(
        cls,
        data: Iterable[Any],
        path: PathType,
        *,
        tag: Optional[str] = None,
        pickle: bool = False,
    ) -> Multiplexer:
        """Stores the elements of ``data`` as a new dataset in a new folder
        below ``path`` (named by the time, plus ``tag``), for a coordinator.

        Every element is encoded before anything is written: one that is not
        a MessagePack type raises ``TypeError`` naming its position (with
        ``pickle=True``, any picklable object will do; see the module docs'
        warning). An empty ``data`` raises ``ValueError``.

        The object returned is not in a read session: call
        :meth:`create_read_session` and give its id to the workers.
        """
        ds = _native.Dataset.create(data, _dataset_url(path), tag, pickle)
        obj = cls.__new__(cls)
        obj._setup(ds.url, None, None, None, pickle)
        obj._dataset = ds
        return obj

    @classmethod
    def open(cls, path: PathType) -> Multiplexer:
        """The coordinator's handle on an existing dataset folder (the one
        :attr:`path` names)."""
        ds = _native.Dataset.open(_dataset_url(path))
        obj = cls.__new__(cls)
        obj._setup(ds.url, None, None, None, False)
        obj._dataset = ds
        return obj

    def __reduce__(self) -> Tuple[Any, ...]:
        if self._mux_id is None:
            return (_open_coordinator, (self._url, self._pickle))
        return (
            _join,
            (self._mux_id, self._worker_id, self._timeout, self._pickle, self._shard),
        )

    def _ds(self) -> _native.Dataset:
        if self._dataset is None:
            self._dataset = _native.Dataset.open(self._url)
        return self._dataset

    @property
    def path(self) -> str:
        """The URL of the dataset folder."""
        return self._url

    @property
    def mux_id(self) -> Optional[str]:
        """The read session this object takes part in, or None (a
        coordinator's object from :meth:`new`)."""
        return self._mux_id

    @property
    def worker_id(self) -> str:
        """The name recorded in this worker's claims: the one given, else
        ``host/pid/thread`` of the process and thread asking."""
        return self._worker_id or default_holder()

    def __len__(self) -> int:
        """The number of elements in the dataset."""
        return len(self._ds())

    def create_read_session(
        self,
        *,
        lease: Optional[float] = None,
        max_attempts: Optional[int] = None,
        max_failed: Optional[int] = None,
    ) -> str:
        """Starts a new, independent read session and returns its mux id.

        Give the id to the workers: each ``Multiplexer(mux_id)`` takes part
        in the session, and each element is handed out to exactly one of
        them. Sessions on one dataset do not affect each other.

        Args:
            lease: seconds; makes a crash-safe leased session (see the
                module docs). Between 0.1 s and 7 days.
            max_attempts: leased sessions: attempts (expired leases and
                reported failures) before an element is recorded as failed;
                default 3.
            max_failed: leased sessions: stop handing out new elements once
                this many have failed.
        """
        return self._ds().create_read_session(lease, max_attempts, max_failed)

    def _worker(self, manual_ack: bool) -> _native.Worker:
        if self._mux_id is None:
            raise RuntimeError(
                "this Multiplexer is not in a read session: call create_read_session() "
                "and iterate Multiplexer(mux_id)"
            )
        pid = os.getpid()
        got = self._workers.get(manual_ack)
        if got is None or got[0] != pid:
            w = _native.Worker(
                self._mux_id,
                self.worker_id,
                self._timeout,
                manual_ack,
                self._pickle,
                self._shard,
            )
            self._workers[manual_ack] = (pid, w)
            return w
        return got[1]

    def __iter__(self) -> Iterator[Any]:
        """The elements this worker obtains, as a plain blocking iterator;
        it ends when the session has none left (handed out to this worker or
        others). In a leased session, asking for the next element
        acknowledges the previous one; an element whose loop body raised is
        handed out again once its lease expires.

        Iterating again continues the same participation (each element is
        still handed out once)."""
        return self._worker(False)

    def tasks(self) -> Iterator[_native.Task]:
        """The elements as :class:`Task` objects (index, attempt, value),
        acknowledged explicitly: ``task.ack()``, ``task.fail(reason)``,
        ``task.release()``, or ``with task:`` (acknowledged on success,
        failed with the exception otherwise). In a default session
        acknowledging does nothing."""
        w = self._worker(True)
        while True:
            t = w.next_task()
            if t is None:
                return
            yield t

    def progress(self) -> Dict[str, Any]:
        """This worker's counters so far (claimed, collisions, lists, ...)."""
        return self._worker(False).progress()

    def close(self) -> None:
        """Writes this worker's progress summary now, so that ``stat``
        counts what it claimed. A loop that runs to the end does this by
        itself; call it (or use ``with Multiplexer(mux_id) as m:``) when you
        leave the loop early. Iterating afterwards goes on as before."""
        pid = os.getpid()
        for got_pid, w in list(self._workers.values()):
            if got_pid == pid:
                w.flush()

    def __enter__(self) -> "Multiplexer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _id(self, mux_id: Optional[str]) -> str:
        if mux_id:
            return mux_id
        if self._mux_id is None:
            raise ValueError("no mux_id given, and this Multiplexer is not in a read session")
        return self._mux_id

    def stat(self, mux_id: Optional[str] = None, *, exact: bool = False) -> Dict[str, Any]:
        """Progress of a read session (this object's own when ``mux_id`` is
        None), as a dict: ``total``, ``claimed`` (also under the original's
        name ``next``), ``done``, ``workers`` (a list of per-worker dicts,
        from summaries the workers refresh every few seconds; ``exact=True``
        reads every claim instead), ``first_claim``, ``last_claim``,
        ``elapsed_s``, and ``leased`` for a leased session. Values are typed
        (the original's were all strings)."""
        return self._ds().stat(self._id(mux_id), exact)

    def done(self, mux_id: Optional[str] = None) -> bool:
        """True when every element of the session was handed out (leased
        sessions: completed or failed)."""
        return self._ds().done(self._id(mux_id))

    def sessions(self) -> List[str]:
        """The mux ids of every session of this dataset, oldest first."""
        return self._ds().sessions()

    def retry_failed(self, mux_id: Optional[str] = None) -> int:
        """Leased sessions: makes the failed elements available again, each
        with a new attempt budget; returns how many."""
        return self._ds().retry_failed(self._id(mux_id))

    def destroy(self, *, force: bool = False) -> None:
        """Deletes the dataset and all its sessions. Refuses
        (``cloudmux.PreconditionError``) while a session is still running,
        unless ``force``: its workers then stop with an error (this waits
        about 12 s for them to notice). An interrupted destroy can be run
        again."""
        self._ds().destroy(force)

    def __repr__(self) -> str:
        if self._mux_id is None:
            return f"Multiplexer.open({self._url!r})"
        return f"Multiplexer({self._mux_id!r})"


def _join(
    mux_id: str,
    worker_id: Optional[str],
    timeout: Optional[float],
    pickle: bool,
    shard: Optional[Tuple[int, int]] = None,
) -> Multiplexer:
    return Multiplexer(mux_id, worker_id, timeout, pickle=pickle, shard=shard)


def _open_coordinator(url: str, pickle: bool) -> Multiplexer:
    obj = Multiplexer.__new__(Multiplexer)
    obj._setup(url, None, None, None, pickle)
    return obj
