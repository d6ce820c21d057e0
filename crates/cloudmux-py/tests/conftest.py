"""Shared fixtures: a fresh folder on each backend under test.

Backends:

- ``local``: a temporary directory; always.
- ``s3``: an S3 emulator (moto) through ``S3Upath``, when
  ``CLOUDMUX_S3_ENDPOINT`` is set (with ``AWS_ACCESS_KEY_ID`` and
  ``AWS_SECRET_ACCESS_KEY``; dummy ``test`` keys are the default). A bucket
  is created per run unless ``CLOUDMUX_S3_BUCKET`` names one. Without an
  endpoint the S3 tests are skipped with the reason, and fail instead when
  ``CLOUDMUX_REQUIRE_EMULATORS=1``.

The ``cloudmux`` command for the mixed-session test is
``$CARGO_TARGET_DIR/debug/cloudmux`` (default target dir: the repository's
``target``), or ``CLOUDMUX_CLI``. Without it that test is skipped, and fails
instead when ``CLOUDMUX_REQUIRE_CLI=1``.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import urllib.request
from typing import Iterator, Optional

import pytest

from cloudmux.upathlib import LocalUpath, S3Upath, Upath

REPO = pathlib.Path(__file__).resolve().parents[3]


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0", "false", "no")


def missing(what: str, flag: str) -> None:
    """Skips the test for a missing prerequisite, or fails it when ``flag``
    says it is required."""
    if _flag(flag):
        pytest.fail(f"{what} ({flag}=1 requires it)")
    pytest.skip(what)


_s3_bucket: Optional[str] = None


def _s3_setup() -> Optional[str]:
    """Configures the environment for the S3 emulator (inherited by worker
    processes) and returns the bucket, or None when none is configured."""
    global _s3_bucket
    endpoint = os.environ.get("CLOUDMUX_S3_ENDPOINT", "").strip()
    if not endpoint:
        return None
    if _s3_bucket is not None:
        return _s3_bucket
    os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    bucket = os.environ.get("CLOUDMUX_S3_BUCKET", "").strip()
    if not bucket:
        bucket = f"cloudmux-py-{secrets.token_hex(4)}"
        # The emulators take an unsigned bucket creation.
        req = urllib.request.Request(f"{endpoint.rstrip('/')}/{bucket}", method="PUT")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status in (200, 204), r.status
    _s3_bucket = bucket
    return bucket


BACKENDS = ["local", "s3"]


def pytest_sessionstart(session: pytest.Session) -> None:
    # Before any worker process exists: a forkserver, once started, keeps
    # the environment it started with.
    _s3_setup()


@pytest.fixture
def local_root(tmp_path: pathlib.Path) -> LocalUpath:
    """A fresh, empty local folder."""
    return LocalUpath(str(tmp_path / "root"))


@pytest.fixture
def s3_root() -> Iterator[S3Upath]:
    """A fresh prefix in the S3 emulator's bucket."""
    bucket = _s3_setup()
    if bucket is None:
        missing(
            "no S3 emulator configured (set CLOUDMUX_S3_ENDPOINT, e.g. "
            "CLOUDMUX_EMULATORS=moto bash localstack/up.sh && source localstack/.state/env "
            "&& export CLOUDMUX_S3_ENDPOINT=$CLOUDMUX_MOTO_ENDPOINT)",
            "CLOUDMUX_REQUIRE_EMULATORS",
        )
    root = S3Upath(f"s3://{bucket}/py-{secrets.token_hex(6)}")
    yield root
    root.rmrf()


@pytest.fixture(params=BACKENDS)
def root(request: pytest.FixtureRequest) -> Upath:
    """A fresh folder on each backend."""
    if request.param == "local":
        return request.getfixturevalue("local_root")
    return request.getfixturevalue("s3_root")


def is_s3(p: Upath) -> bool:
    return isinstance(p, S3Upath)


@pytest.fixture
def cli() -> str:
    """The ``cloudmux`` command built by ``cargo build -p cloudmux-cli``."""
    explicit = os.environ.get("CLOUDMUX_CLI")
    if explicit:
        path = pathlib.Path(explicit)
    else:
        target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
        path = target / "debug" / "cloudmux"
    if not (path.is_file() and os.access(path, os.X_OK)):
        missing(
            f"the cloudmux command is not built at {path} (cargo build -p cloudmux-cli)",
            "CLOUDMUX_REQUIRE_CLI",
        )
    return str(path)
