"""Files and folders written whole or not at all (`facebench.storage`): the judges and corpora made
once, whole, replaced whole, one clear error where the store cannot be written; and what is written
gets the mode a plain write would give it, not the owner-only mode of a temporary file."""

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from facebench.errors import DataError
from facebench.storage import stored_once, umask, write_atomically


def writer(card: dict, calls: list):
    def make(scratch: Path) -> None:
        calls.append(scratch)
        (scratch / "weights.pt").write_text(f"weights {card['n']}")
        (scratch / "card.json").write_text(json.dumps(card))

    return make


def test_made_once_then_found(tmp_path):
    calls = []
    folder = tmp_path / "judge" / "v1"
    assert stored_once(folder, "a judge", writer({"n": 1}, calls), announce=False) == folder
    assert stored_once(folder, "a judge", writer({"n": 2}, calls), announce=False) == folder
    assert len(calls) == 1 and json.loads((folder / "card.json").read_text()) == {"n": 1}
    assert sorted(p.name for p in folder.parent.iterdir()) == ["v1", "v1.lock"]  # no scratch left behind


def test_replace_swaps_the_whole_folder(tmp_path):
    folder = tmp_path / "v1"
    stored_once(folder, "a judge", writer({"n": 1}, []), announce=False)
    (folder / "stale.pt").write_text("only in the old folder")

    stored_once(folder, "a judge", writer({"n": 2}, []), replace=True, announce=False)
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "weights.pt"]
    assert (folder / "weights.pt").read_text() == "weights 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1", "v1.lock"]


def test_an_interrupted_make_leaves_nothing_stored(tmp_path):
    folder = tmp_path / "v1"

    def interrupted(scratch: Path) -> None:
        (scratch / "weights.pt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stored_once(folder, "a judge", interrupted, announce=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1.lock"]
    stored_once(folder, "a judge", writer({"n": 1}, []), announce=False)
    with pytest.raises(KeyboardInterrupt):  # and a failed replacement keeps the stored folder
        stored_once(folder, "a judge", interrupted, replace=True, announce=False)
    assert (folder / "weights.pt").read_text() == "weights 1"


def test_an_unwritable_store_is_one_clear_error(tmp_path):
    (tmp_path / "store").write_text("a file where the store's folder should be")
    with pytest.raises(DataError, match=r"v1: expected a writable folder to store a judge \(once\), found File exists: .*store"):
        stored_once(tmp_path / "store" / "v1", "a judge", writer({"n": 1}, []), announce=False)


def make_slowly(scratch: Path) -> None:
    """A make that takes a while and leaves a trace of every call beside the store."""
    with open(scratch.parent / "calls.txt", "a") as calls:
        calls.write(f"{scratch.name}\n")
    time.sleep(0.5)
    (scratch / "card.json").write_text("{}")


def store_in(folder: Path) -> None:
    stored_once(folder, "a judge", make_slowly, announce=False)


def test_processes_asking_at_once_make_it_once(tmp_path):
    folder = tmp_path / "v1"
    context = multiprocessing.get_context("spawn")  # a fresh interpreter each, as separate runs are
    processes = [context.Process(target=store_in, args=(folder,)) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0, 0, 0]
    assert len((tmp_path / "calls.txt").read_text().splitlines()) == 1 and (folder / "card.json").is_file()


def test_written_files_and_folders_get_the_modes_a_plain_write_gives(tmp_path):
    plain_file, plain_folder = tmp_path / "plain.txt", tmp_path / "plain"
    plain_file.write_text("x")
    plain_folder.mkdir()
    mode = lambda path: path.stat().st_mode & 0o777  # noqa: E731

    written = tmp_path / "written.txt"
    write_atomically(written, lambda f: f.write(b"new"))
    assert written.read_bytes() == b"new" and mode(written) == mode(plain_file) == 0o666 & ~umask()
    written.chmod(0o640)
    write_atomically(written, lambda f: f.write(b"again"))
    assert written.read_bytes() == b"again" and mode(written) == 0o640  # an existing file keeps its mode

    folder = stored_once(tmp_path / "v1", "a judge", writer({"n": 1}, []), announce=False)
    assert mode(folder) == mode(plain_folder) == 0o777 & ~umask()
    assert mode(folder / "card.json") == mode(plain_file)


def test_an_interrupted_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "rows.csv"
    write_atomically(path, lambda f: f.write(b"old"))

    def interrupted(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, interrupted)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["rows.csv"]


def test_a_read_only_store_is_one_clear_error(tmp_path, monkeypatch):
    """As a user without write permission sees it (the tests may run as root, who may write anywhere)."""
    monkeypatch.setattr(os, "access", lambda path, how: Path(path) != tmp_path)
    with pytest.raises(DataError, match=r"v1: expected a writable folder to store a judge \(once\), found no permission to write in"):
        stored_once(tmp_path / "v1", "a judge", writer({"n": 1}, []), announce=False)
