"""The original library's documentation example, run as the interactive
session it shows, with only its import lines changed (and its folder made
unique, so that runs never share one)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import pathlib

# From the original documentation (cloudly's "multiplexer" page); the two
# import lines name cloudmux instead of cloudly.
SESSION = """\
from cloudmux.upathlib import LocalUpath
from cloudmux.multiplexer import Multiplexer
p = LocalUpath('/tmp/abc/mux')
p.rmrf()
hyper = Multiplexer.new(range(20), p)
len(hyper)

import multiprocessing, random, time

def worker(mux_id):
    for x in Multiplexer(mux_id):
        time.sleep(random.uniform(0.1, 0.2))  # doing a lot of things
        print(x, 'done in', multiprocessing.current_process().name)

mux_id = hyper.create_read_session()
tasks = [multiprocessing.Process(target=worker, args=(mux_id,)) for _ in range(5)]
for t in tasks:
    t.start()

for t in tasks:
    t.join()

hyper.done(mux_id)
hyper.destroy()
"""


def test_documentation_example(tmp_path: pathlib.Path) -> None:
    session = SESSION.replace("/tmp/abc/mux", str(tmp_path / "abc" / "mux"))
    # `python -i` reading stdin echoes each expression's value to stdout, as
    # the documentation shows; prompts go to stderr. Its stdout writes each
    # piece of a print at once, so five worker processes printing together
    # can interleave within a line; a terminal would show whole lines. The
    # interpreter's startup file (not the example) makes stdout line-buffered,
    # as on a terminal, so that each line is one write.
    startup = tmp_path / "startup.py"
    startup.write_text("import sys\nsys.stdout.reconfigure(line_buffering=True)\n")
    env = dict(os.environ, PYTHONSTARTUP=str(startup))
    r = subprocess.run(
        [sys.executable, "-i", "-q"],
        input=session,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    done = [l for l in lines if " done in " in l]
    rest = [l for l in lines if " done in " not in l]
    # p.rmrf() -> 0, len(hyper) -> 20, hyper.done(mux_id) -> True, and
    # hyper.destroy() shows nothing.
    assert rest == ["0", "20", "True"], (rest, r.stderr)
    assert len(done) == 20, done
    got = []
    for l in done:
        m = re.fullmatch(r"(\d+) done in (Process-\d+)", l)
        assert m, l
        got.append(int(m.group(1)))
    assert sorted(got) == list(range(20))
    assert "Traceback" not in r.stderr, r.stderr
