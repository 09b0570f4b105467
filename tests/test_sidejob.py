"""SideJob: work in a spawned process, its bars drawn here, its errors raised here."""

from __future__ import annotations

import os

import pytest

from pvg.errors import PvgError
from pvg.game.sidejob import SideJob


def count_to(n: int, add_bar) -> dict:
    advance = add_bar("counting", n)
    for i in range(n):
        advance(at=i)
    return {"counted": n}


def refuse(add_bar) -> None:
    add_bar("refusing", 1)
    raise PvgError("field x: no")


def crash(add_bar) -> None:
    raise ZeroDivisionError("boom")


def test_result_and_bars_come_back():
    seen: dict[str, list] = {}

    def add_bar(description, total):
        seen[description] = [total, 0]

        def advance(n=1, **fields):
            seen[description][1] += n

        return advance

    job = SideJob(count_to, (25,), threads=1)
    here = job.relaying(add_bar)("here", 3)
    for _ in range(3):
        here()
    assert job.result(add_bar) == {"counted": 25}
    assert seen["counting"] == [25, 25] and seen["here"] == [3, 3]
    job.stop()


@pytest.mark.parametrize("fn, message", [(refuse, "field x: no"), (crash, "ZeroDivisionError: boom")])
def test_errors_in_the_child_are_raised_here(fn, message):
    job = SideJob(fn, (), threads=1)
    with pytest.raises(PvgError, match=message):
        job.result(lambda d, t: (lambda n=1, **f: None))
    job.stop()


def _stand_in_removed_folder(folder, monkeypatch) -> None:
    """Make `folder` our cwd (and PWD, as a shell records it), then delete it under us."""
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("PWD", str(folder))
    folder.rmdir()


def test_starts_from_a_working_folder_replaced_under_it(tmp_path, monkeypatch):
    """What a Ray job's driver sees when another node on its machine unpacks the job's package again."""
    here = tmp_path / "_ray_pkg_x"
    _stand_in_removed_folder(here, monkeypatch)
    here.mkdir()  # the same path, a new folder: our cwd is the old one, deleted
    with pytest.raises(FileNotFoundError):
        os.getcwd()
    job = SideJob(count_to, (3,), threads=1)
    assert job.result(lambda d, t: (lambda n=1, **f: None)) == {"counted": 3}
    job.stop()
    assert os.getcwd() == str(here)


def test_a_working_folder_gone_for_good_is_a_clear_error(tmp_path, monkeypatch):
    _stand_in_removed_folder(tmp_path / "gone", monkeypatch)
    with pytest.raises(PvgError, match="working folder of this process is gone"):
        SideJob(count_to, (3,), threads=1)
