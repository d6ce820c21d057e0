"""The path API of cloudmux.upathlib, with the original library's semantics."""

from __future__ import annotations

import os
import pickle

import pytest

from cloudmux.upathlib import (
    AzureBlobUpath,
    FileInfo,
    GcsBlobUpath,
    LocalUpath,
    S3Upath,
    Upath,
    resolve_path,
)


def test_pure_path_arithmetic() -> None:
    p = LocalUpath("/tmp/test/upathlib/data/sales.txt.gz")
    assert str(p) == "/tmp/test/upathlib/data/sales.txt.gz"
    assert repr(p) == "LocalUpath('/tmp/test/upathlib/data/sales.txt.gz')"
    assert p.as_uri() == "file:///tmp/test/upathlib/data/sales.txt.gz"
    assert os.fspath(p) == str(p)
    assert (p.name, p.stem, p.suffix, p.suffixes) == (
        "sales.txt.gz",
        "sales.txt",
        ".gz",
        [".txt", ".gz"],
    )
    assert p.with_suffix(".data") == LocalUpath("/tmp/test/upathlib/data/sales.txt.data")
    assert p.with_suffix("").with_suffix("") == LocalUpath("/tmp/test/upathlib/data/sales")
    assert p.with_name("x.bin").name == "x.bin"
    assert p.with_stem("y").name == "y.gz"
    top = p.parent.parent.parent.parent
    assert top == LocalUpath("/tmp") and top.parent == LocalUpath("/")
    assert top.parent.parent == LocalUpath("/") and top.parent.name == ""
    with pytest.raises(ValueError):
        LocalUpath("/").with_name("x")
    # joinpath follows os.path.join: '..' normalised, absolute segments reset.
    assert LocalUpath("/a/b") / "c/../d" == LocalUpath("/a/b/d")
    assert LocalUpath("/a/b").joinpath("c", "/e", "f") == LocalUpath("/e/f")
    assert LocalUpath("rel").path == LocalUpath(os.getcwd()).path / "rel"
    assert LocalUpath() == LocalUpath(os.getcwd())
    assert sorted([LocalUpath("/b"), LocalUpath("/a")]) == [LocalUpath("/a"), LocalUpath("/b")]
    assert len({LocalUpath("/a"), LocalUpath("/a/")}) == 1


def test_cloud_paths_and_resolve_path() -> None:
    s = S3Upath("s3://bkt/a/b.txt")
    assert str(s) == "s3://bkt/a/b.txt" and s.bucket_name == "bkt" and s.blob_name == "a/b.txt"
    assert S3Upath("a", "b.txt", bucket_name="bkt") == s
    assert S3Upath("s3://bkt", "a", "b.txt") == s
    assert s.root == S3Upath("s3://bkt") and str(s.root) == "s3://bkt/"
    assert repr(s.parent) == "S3Upath('s3://bkt/a')"
    g = GcsBlobUpath("experiments", "data", "first.data", bucket_name="backup")
    assert g == GcsBlobUpath("gs://backup/experiments/data/first.data")
    assert g == GcsBlobUpath("gs://backup", "experiments", "data/first.data")
    a = AzureBlobUpath("https://acct.blob.core.windows.net/ctr/x/y")
    assert str(a) == "az://acct/ctr/x/y" and a.container_name == "ctr" and a.account_name == "acct"
    assert AzureBlobUpath("x", "y", container_name="ctr", account_name="acct") == a
    assert isinstance(resolve_path("s3://bkt/k"), S3Upath)
    assert isinstance(resolve_path("gs://bkt/k"), GcsBlobUpath)
    assert isinstance(resolve_path("az://acct/ctr/k"), AzureBlobUpath)
    assert resolve_path("file:///tmp/x") == LocalUpath("/tmp/x")
    assert isinstance(resolve_path("relative/dir"), LocalUpath)
    assert resolve_path(s) is s
    with pytest.raises(TypeError):
        Upath("/x")
    for u in [s, g, a, LocalUpath("/tmp/x")]:
        assert pickle.loads(pickle.dumps(u)) == u


def test_read_write_create_only(root: Upath) -> None:
    f = root / "d" / "f.txt"
    assert not f.exists() and not f.is_file() and f.file_info() is None
    f.write_text("héllo")
    assert f.read_text() == "héllo" and f.read_bytes() == "héllo".encode()
    with pytest.raises(FileExistsError):
        f.write_text("again")
    f.write_text("again", overwrite=True)
    assert f.read_text() == "again"
    info = f.file_info()
    assert isinstance(info, FileInfo) and info.size == 5 and info.mtime > 0
    assert info.details["version"]
    j = root / "d" / "j.json"
    j.write_json({"a": [1, 2]})
    assert j.read_json() == {"a": [1, 2]}
    with pytest.raises(FileExistsError):
        j.write_json({})
    j.write_json({"b": None}, overwrite=True, indent=1)
    assert j.read_json() == {"b": None}
    b = root / "b.bin"
    b.write_bytes(bytearray(b"\x00\x01"))
    b.write_bytes(memoryview(b"\x02"), overwrite=True)
    import io

    b.write_bytes(io.BytesIO(b"stream"), overwrite=True)
    assert b.read_bytes() == b"stream"
    pk = root / "o.pickle"
    pk.write_pickle({"x": {1, 2}})
    assert pk.read_pickle() == {"x": {1, 2}}
    assert (root / "d").is_dir() and not (root / "d").is_file() and (root / "d").exists()
    with pytest.raises(FileNotFoundError):
        (root / "missing").read_bytes()


def test_listing_removal_and_copies(root: Upath) -> None:
    for name in ["a/1.txt", "a/2.txt", "a/sub/3.txt", "b.txt"]:
        (root / name).write_text(name)
    assert root.ls() == [root / "a", root / "b.txt"]
    assert sorted(root.iterdir()) == root.ls()
    assert sorted(p.name for p in (root / "a").riterdir()) == ["1.txt", "2.txt", "3.txt"]
    assert list((root / "nothing").iterdir()) == []
    # copy_file is called on the target; a str source is relative to its parent.
    (root / "a" / "copy.txt").copy_file("1.txt")
    assert (root / "a" / "copy.txt").read_text() == "a/1.txt"
    with pytest.raises(FileExistsError):
        (root / "a" / "copy.txt").copy_file(root / "b.txt")
    (root / "a" / "copy.txt").copy_file(root / "b.txt", overwrite=True)
    assert (root / "a" / "copy.txt").read_text() == "b.txt"
    with pytest.raises(FileNotFoundError):
        (root / "x.txt").copy_file("nope.txt")
    # copy_dir is called on the target too, and returns the count.
    assert (root / "c").copy_dir(root / "a") == 4
    assert (root / "c" / "sub" / "3.txt").read_text() == "a/sub/3.txt"
    # remove_file: FileNotFoundError unless missing_ok.
    (root / "b.txt").remove_file()
    with pytest.raises(FileNotFoundError):
        (root / "b.txt").remove_file()
    (root / "b.txt").remove_file(missing_ok=True)
    # remove_dir removes everything below, recursively, and counts it.
    assert (root / "c").remove_dir() == 4
    assert not (root / "c").exists()
    assert root.rmrf() == 4
    assert not root.exists() and root.rmrf() == 0
    with pytest.raises(ValueError):
        root.root.rmrf()


def test_local_files_are_plain_files(local_root: LocalUpath) -> None:
    f = local_root / "plain.txt"
    f.write_text("x")
    with open(f) as fh:  # an os.PathLike
        assert fh.read() == "x"
    assert sorted(os.listdir(local_root)) == ["plain.txt"]
