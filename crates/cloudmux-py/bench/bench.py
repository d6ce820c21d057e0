"""One hand-out run on local disk, timed: a dataset of N integers, a read
session, W multiprocessing workers that take elements and do nothing with
them, then done(). Run by bench.sh once per contender:

    python bench.py cloudmux|cloudly|cli --elements N --workers W --root DIR [--cli PATH]

``cloudmux`` and ``cloudly`` run the same code with only the imports
changed (fork start method); ``cli`` runs the same steps with the ``cloudmux`` command (``new``,
``session``, W ``cloudmux work`` processes, ``done``). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import time
from typing import Any, Dict, List


def _worker(lib: str, mux_id: str, results: Any) -> None:
    if lib == "cloudmux":
        from cloudmux.multiplexer import Multiplexer
    else:
        from cloudly.util.multiplexer import Multiplexer
    got = [x for x in Multiplexer(mux_id)]
    results.put(got)


def run_python(lib: str, n: int, workers: int, root: str) -> Dict[str, Any]:
    if lib == "cloudmux":
        from cloudmux.multiplexer import Multiplexer
        from cloudmux.upathlib import LocalUpath
    else:
        from cloudly.upathlib import LocalUpath
        from cloudly.util.multiplexer import Multiplexer
    p = LocalUpath(root)
    p.rmrf()
    ctx = multiprocessing.get_context("fork")
    t0 = time.perf_counter()
    mux = Multiplexer.new(range(n), p)
    mux_id = mux.create_read_session()
    t1 = time.perf_counter()
    results = ctx.Queue()
    ps = [ctx.Process(target=_worker, args=(lib, mux_id, results)) for _ in range(workers)]
    for w in ps:
        w.start()
    got: List[int] = []
    for _ in ps:
        got += results.get(timeout=3600)
    for w in ps:
        w.join()
    t2 = time.perf_counter()
    done = mux.done(mux_id)
    t3 = time.perf_counter()
    # Not destroyed: deleting 10,000 files slows the next contender's
    # creates on ext4 (it skips recently deleted inodes); bench.sh removes
    # every folder at the end.
    return _report(lib, n, workers, got, done, t0, t1, t2, t3)


def run_cli(cli: str, n: int, workers: int, root: str) -> Dict[str, Any]:
    os.makedirs(root, exist_ok=True)

    def out(*args: str) -> str:
        return subprocess.run([cli, *args], check=True, capture_output=True, text=True).stdout.strip()

    t0 = time.perf_counter()
    ds = out("new", root, "--range", f"0..{n}")
    mux_id = out("session", ds)
    t1 = time.perf_counter()
    ps = [subprocess.Popen([cli, "work", mux_id], stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    got: List[int] = []
    for w in ps:
        stdout, _ = w.communicate()
        got += [int(l) for l in stdout.split()]
    t2 = time.perf_counter()
    done = subprocess.run([cli, "done", mux_id], capture_output=True).returncode == 0
    t3 = time.perf_counter()
    return _report("cloudmux work", n, workers, got, done, t0, t1, t2, t3)


def _report(
    name: str, n: int, workers: int, got: List[int], done: bool, t0: float, t1: float, t2: float, t3: float
) -> Dict[str, Any]:
    exact = sorted(got) == list(range(n))
    total = t3 - t0
    return {
        "contender": name,
        "elements": n,
        "workers": workers,
        "exactly_once": exact,
        "done": done,
        "new_and_session_s": round(t1 - t0, 3),
        "workers_s": round(t2 - t1, 3),
        "done_s": round(t3 - t2, 3),
        "total_s": round(total, 3),
        "elements_per_s": round(n / total, 1),
        "us_per_element": round(total / n * 1e6, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("contender", choices=["cloudmux", "cloudly", "cli"])
    ap.add_argument("--elements", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--root", required=True)
    ap.add_argument("--cli")
    a = ap.parse_args()
    if a.contender == "cli":
        r = run_cli(a.cli, a.elements, a.workers, a.root)
    else:
        r = run_python(a.contender, a.elements, a.workers, a.root)
    print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
