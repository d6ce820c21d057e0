"""Type stubs of cloudmux's native module (the Rust extension).

Use the Python modules instead: :mod:`cloudmux.upathlib` and
:mod:`cloudmux.multiplexer` are the API; this module is what they call.
Every request runs with the GIL released and raises the exceptions of
:mod:`cloudmux.errors`.
"""

from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

__version__: str
#: The MessagePack extension type of pickled elements.
PICKLE_EXT_TYPE: int

def parse_mux_id(mux_id: str) -> Tuple[str, str]:
    """``(session, dataset URL)`` of a mux id; ``ValueError`` when malformed."""

def task_index_vars() -> List[str]:
    """Environment variables naming a batch task's index, in order."""

class Path:
    """A storage path opened from its URL on first use in each process."""

    def __init__(self, url: str) -> None: ...
    @property
    def url(self) -> str:
        """The URL this path was made from."""
    def resolved_url(self) -> str:
        """The URL as the backend spells it."""
    def key(self) -> str:
        """The key below the store's root."""
    def exists(self) -> bool:
        """True when an object or a directory exists here."""
    def is_file(self) -> bool:
        """True when an object exists here."""
    def is_dir(self) -> bool:
        """True when objects exist below this path."""
    def file_info(self) -> Optional[Tuple[int, float, Optional[str]]]:
        """``(size, mtime, version)``, or None when there is no object."""
    def read_bytes(self) -> bytes:
        """The object's bytes."""
    def write_bytes(self, data: bytes, overwrite: bool) -> None:
        """Writes the object; create-only unless ``overwrite``."""
    def remove_file(self, missing_ok: bool) -> None:
        """Deletes the object."""
    def remove_below(self) -> int:
        """Deletes every object below this directory; returns how many."""
    def rmrf(self) -> int:
        """Deletes the object here and everything below; returns how many."""
    def list_page(
        self, recursive: bool, token: Optional[str] = None
    ) -> Tuple[List[str], List[str], Optional[str]]:
        """One listing page: object keys, directory keys, next token."""
    def copy_file_to(self, dst: Path, overwrite: bool) -> None:
        """Copies this object to ``dst``."""
    def copy_dir_to(self, dst: Path, overwrite: bool) -> int:
        """Copies every object below this directory to ``dst``."""
    def lock(self, timeout: float, ttl: float, holder: Optional[str] = None) -> Lock:
        """Acquires the lock on this path and keeps it renewed."""

class Lock:
    """A held lock, renewed in the background until released."""

    @property
    def fencing_token(self) -> int:
        """The fencing token of this acquisition."""
    @property
    def holder(self) -> str:
        """The holder name recorded in the lock."""
    @property
    def lock_url(self) -> str:
        """The URL of the lock object."""
    @property
    def is_held(self) -> bool:
        """True until released or lost."""
    def release(self) -> None:
        """Releases the lock."""

class Dataset:
    """A dataset, for the coordinator."""

    @staticmethod
    def create(
        data: Iterable[Any], url: str, tag: Optional[str] = None, pickle: bool = False
    ) -> Dataset:
        """Encodes ``data`` and stores it as a new dataset below ``url``."""
    @staticmethod
    def open(url: str) -> Dataset:
        """Opens an existing dataset folder."""
    @property
    def url(self) -> str:
        """The dataset folder's URL."""
    def __len__(self) -> int: ...
    def create_read_session(
        self,
        lease: Optional[float] = None,
        max_attempts: Optional[int] = None,
        max_failed: Optional[int] = None,
    ) -> str:
        """Starts a read session; returns its mux id."""
    def stat(self, mux_id: str, exact: bool = False) -> Dict[str, Any]:
        """A session's progress."""
    def done(self, mux_id: str) -> bool:
        """True when every element was handed out."""
    def sessions(self) -> List[str]:
        """The mux ids of the dataset's sessions."""
    def retry_failed(self, mux_id: str) -> int:
        """Makes a leased session's failed elements available again."""
    def destroy(self, force: bool = False) -> int:
        """Removes the dataset; returns the objects removed."""

class Worker(Iterator[Any]):
    """A participant in a read session."""

    def __init__(
        self,
        mux_id: str,
        worker_id: Optional[str] = None,
        timeout: Optional[float] = None,
        manual_ack: bool = False,
        pickle: bool = False,
        shard: Optional[Tuple[int, int]] = None,
    ) -> None: ...
    @property
    def mux_id(self) -> str:
        """The mux id."""
    @property
    def worker_id(self) -> Optional[str]:
        """The worker id."""
    def progress(self) -> Dict[str, Any]:
        """This worker's counters."""
    def flush(self) -> None:
        """Writes this worker's progress summary now, if it changed."""
    def __iter__(self) -> Worker: ...
    def __next__(self) -> Any: ...
    def next_task(self) -> Optional[Task]:
        """The next element as a Task, or None at the end."""

class Task:
    """An element handed out, with its lease in a leased session."""

    @property
    def index(self) -> int:
        """The element's index in the dataset."""
    @property
    def attempt(self) -> int:
        """The attempt number (1 in a default session)."""
    @property
    def value(self) -> Any:
        """The element."""
    @property
    def leased(self) -> bool:
        """True in a leased session."""
    @property
    def lost(self) -> bool:
        """True once the lease was taken over by another worker."""
    def ack(self) -> None:
        """Acknowledges the element."""
    def fail(self, reason: str) -> bool:
        """Reports a failed attempt; True when the element is now failed
        for good (its attempts are spent), False when it is handed out
        again."""
    def release(self) -> None:
        """Gives the element back without failing it."""
    def __enter__(self) -> Task: ...
    def __exit__(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> bool: ...
