"""``commits_unflushed``: the setting holds inside the block only, and is reset after an error too."""

from __future__ import annotations

import pytest
from django.db import connection

from app.unflushed_commits import commits_unflushed

pytestmark = pytest.mark.django_db


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


def test_commits_inside_the_block_do_not_wait_for_the_flush_and_those_after_it_do() -> None:
    before = _synchronous_commit()

    with commits_unflushed():
        inside = _synchronous_commit()

    assert (before, inside, _synchronous_commit()) == ("on", "off", "on")


def test_the_setting_is_reset_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), commits_unflushed():
        raise RuntimeError("the drain failed")

    assert _synchronous_commit() == "on"
