"""The lock (across processes and forks), the exceptions every failure maps
to, the GIL released while waiting, and Ctrl-C during a long wait."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import cloudmux
import workers
from cloudmux import Multiplexer, errors
from cloudmux.upathlib import LocalUpath, S3Upath, Upath, resolve_path
from conftest import is_s3


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_four_processes_count_to_exactly_100_under_the_lock(root: Upath, method: str) -> None:
    counter = root / "counter"
    counter.write_text("0")
    ctx = multiprocessing.get_context(method)
    results = ctx.Queue()
    ps = [ctx.Process(target=workers.count, args=(counter, 25, results)) for _ in range(4)]
    for p in ps:
        p.start()
    out = [results.get(timeout=600) for _ in ps]
    for p in ps:
        p.join(60)
    assert [e for _, _, e in out if e] == []
    assert counter.read_text() == "100"
    # Every acquisition had its own fencing token, growing by one.
    tokens = sorted(t for _, ts, _ in out for t in ts)
    assert tokens == list(range(tokens[0], tokens[0] + 100))


def test_lock_timeout_names_the_holder(root: Upath) -> None:
    p = root / "state.json"
    with p.lock(timeout=5, holder="holder-one") as first:
        assert first.is_held and first.holder == "holder-one" and first.path == p
        with pytest.raises(TimeoutError) as e:
            with p.lock(timeout=0):
                pass
        assert isinstance(e.value, errors.LockTimeoutError)
        assert isinstance(e.value, cloudmux.Error)
        assert "holder-one" in str(e.value)
        assert e.value.holder == "holder-one" and e.value.token == first.fencing_token
        assert e.value.expires > e.value.acquired > 0
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            p.lock(timeout=0.5).acquire()
        assert 0.4 < time.monotonic() - t0 < 5
    assert not first.is_held
    with p.lock(timeout=0) as second:
        assert second.fencing_token == first.fencing_token + 1


def test_a_held_lock_is_renewed_past_its_ttl(local_root: Upath) -> None:
    p = local_root / "renewed"
    with p.lock(timeout=5, ttl=0.3) as lock:
        time.sleep(1.2)  # four TTLs: only renewals keep it
        assert lock.is_held
        with pytest.raises(TimeoutError):
            p.lock(timeout=0).acquire()


def test_a_forked_child_neither_holds_nor_releases_the_parents_lock(root: Upath) -> None:
    p = root / "guarded"
    ctx = multiprocessing.get_context("fork")
    with p.lock(timeout=5, ttl=0.6) as lock:
        token = lock.fencing_token

        def child() -> None:
            # The inherited Lock object: releasing it from here is refused,
            # and dropping it at exit releases nothing.
            try:
                lock.release()
            except cloudmux.Error:
                os._exit(3)
            os._exit(0)

        c = ctx.Process(target=child)
        c.start()
        c.join(30)
        assert c.exitcode == 3
        # The parent still holds it, renewed across the fork (several TTLs).
        time.sleep(1.5)
        assert lock.is_held
        with pytest.raises(TimeoutError):
            p.lock(timeout=0).acquire()
    with p.lock(timeout=0) as again:
        assert again.fencing_token == token + 1


def test_the_gil_is_released_while_waiting(local_root: Upath) -> None:
    p = local_root / "busy"
    ticks = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    with p.lock(timeout=5):
        t = threading.Thread(target=spin)
        t.start()
        before = ticks
        with pytest.raises(TimeoutError):
            p.lock(timeout=1.0).acquire()  # waits a second in Rust
        during = ticks - before
        stop.set()
        t.join()
    # The spinning thread ran while this one waited.
    assert during > 10_000, during


def test_ctrl_c_interrupts_a_long_wait(tmp_path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from cloudmux.upathlib import LocalUpath
        p = LocalUpath({str(tmp_path / 'x')!r})
        held = p.lock(timeout=5).acquire()
        print("waiting", flush=True)
        t0 = time.monotonic()
        try:
            p.lock(timeout=120).acquire()
        except KeyboardInterrupt:
            print("interrupted after %.1f s" % (time.monotonic() - t0), flush=True)
            sys.exit(0)
        sys.exit(1)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "waiting"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    waited = float(out.split()[2])
    assert waited < 3, out


def test_errors_map_to_pythons_own(local_root: Upath, tmp_path) -> None:
    missing = local_root / "missing.txt"
    with pytest.raises(FileNotFoundError) as e:
        missing.read_text()
    assert isinstance(e.value, errors.NotFoundError) and isinstance(e.value, cloudmux.Error)
    assert e.value.kind == "not found" and e.value.op == "get" and e.value.errno == 2
    assert str(missing.as_uri()) in str(e.value)

    f = local_root / "f"
    f.write_text("1")
    with pytest.raises(FileExistsError) as e2:
        f.write_text("2")
    assert isinstance(e2.value, errors.AlreadyExistsError) and e2.value.path == f.as_uri()

    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target: Upath = LocalUpath(str(ro / "x"))
    elif os.path.isdir("/sys/kernel"):
        target = LocalUpath("/sys/kernel/cloudmux-test/x")  # read-only even for root
    else:
        pytest.skip("no directory this user cannot write to")
    with pytest.raises(PermissionError) as e3:
        target.write_text("x")
    assert isinstance(e3.value, errors.PermissionDeniedError)

    for bad in ["nonsense", "cmx9:s@file:///x", "cmx1:@file:///x", "cmx1:bad id@/x"]:
        with pytest.raises(ValueError) as e4:
            Multiplexer(bad)
        assert isinstance(e4.value, errors.InvalidInputError)
    for url in ["ftp://host/x", "https://example.com/a/b"]:
        with pytest.raises(ValueError):
            resolve_path(url)
    with pytest.raises(ValueError):
        S3Upath("s3://")
    with pytest.raises(ValueError):
        (local_root / "t").lock(timeout=float("nan")).acquire()
    with pytest.raises(ValueError):
        (local_root / "t").lock(timeout=1e300).acquire()
    with pytest.raises(ValueError):
        Multiplexer.new([1], local_root).create_read_session(lease=-1)


def test_other_failures_are_cloudmux_errors(local_root: Upath) -> None:
    mux = Multiplexer.new(range(3), local_root)
    mux_id = mux.create_read_session()
    # A session that does not exist.
    with pytest.raises(FileNotFoundError):
        next(iter(Multiplexer(mux_id.replace(mux_id.split("@")[0][5:], "19990101T000000.000000Z-000000"))))
    # A damaged dataset file.
    data = resolve_path(mux.path) / "data.msgpack"
    data.write_bytes(b"\x93\xc1", overwrite=True)
    with pytest.raises(errors.CorruptError) as e:
        next(iter(Multiplexer(mux_id)))
    assert isinstance(e.value, cloudmux.Error) and e.value.kind == "corrupt data"
    # A leased-only call on a default session.
    with pytest.raises(ValueError):
        mux.retry_failed(mux_id)
