"""Worker functions for the multi-process tests: module-level, so that
``spawn`` and ``forkserver`` children can import them."""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional

from cloudmux.multiplexer import Multiplexer
from cloudmux.upathlib import Upath


def drain(mux_id: str, results: Any, pickle: bool = False) -> None:
    """Takes elements until the session has none left; reports them."""
    try:
        got = list(Multiplexer(mux_id, pickle=pickle))
        results.put((os.getpid(), got, None))
    except BaseException as e:  # reported to the parent, which fails the test
        results.put((os.getpid(), [], repr(e)))


def first_then_wait(mux_id: str, results: Any, go: Any) -> None:
    """Takes one element, reports it, and waits for the others before
    draining (so every child's first claim is its own random start)."""
    try:
        it = iter(Multiplexer(mux_id))
        x = next(it)
        results.put((os.getpid(), [x], None))
        go.wait(60)
        for _ in it:
            pass
    except BaseException as e:
        results.put((os.getpid(), [], repr(e)))


def first_of_shard(mux_id: str, i: int, n: int, results: Any) -> None:
    """Worker i of n, told so through CLOUDMUX_SHARD: its first element."""
    try:
        os.environ["CLOUDMUX_SHARD"] = f"{i}/{n}"
        results.put((i, [next(iter(Multiplexer(mux_id)))], None))
    except BaseException as e:
        results.put((i, [], repr(e)))


def first_with_env(mux_id: str, env: Dict[str, str], results: Any) -> None:
    """The first element of a worker started with these variables set."""
    try:
        os.environ.update(env)
        results.put((0, [next(iter(Multiplexer(mux_id)))], None))
    except BaseException as e:
        results.put((0, [], repr(e)))


def drain_with(mux: Multiplexer, results: Any) -> None:
    """Iterates a Multiplexer object made by the parent (inherited by fork,
    or pickled for spawn)."""
    try:
        results.put((os.getpid(), list(mux), None))
    except BaseException as e:
        results.put((os.getpid(), [], repr(e)))


def count(counter: Upath, rounds: int, results: Any) -> None:
    """Increments a plain counter file under the lock, `rounds` times."""
    try:
        tokens: List[int] = []
        for _ in range(rounds):
            with counter.lock(timeout=120) as lock:
                n = int(counter.read_text())
                counter.write_text(str(n + 1), overwrite=True)
                tokens.append(lock.fencing_token)
        results.put((os.getpid(), tokens, None))
    except BaseException as e:
        results.put((os.getpid(), [], repr(e)))


def take_one_and_die(mux_id: str, results: Any) -> None:
    """Takes one element of a leased session and dies without acknowledging."""
    it = iter(Multiplexer(mux_id))
    x = next(it)
    results.put((os.getpid(), [x], None))
    results.close()
    results.join_thread()
    # Leave at once, as a killed process would: no cleanup, no acknowledgement.
    os._exit(0)


def hold_lock(counter: Upath, seconds: float, ready: Any, holder: Optional[str] = None) -> None:
    """Holds the lock for a while, renewing it, then releases it."""
    with counter.lock(timeout=30, ttl=1.0, holder=holder):
        ready.set()
        time.sleep(seconds)
