"""SideJob: work in a spawned process, its bars drawn here, its errors raised here."""

from __future__ import annotations

import pytest

from pvg.errors import PvgError
from pvg.sidejob import SideJob


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
