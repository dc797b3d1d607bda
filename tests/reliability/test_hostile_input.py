"""Property-based tests: arbitrary names and values never reach SQL as text, never
leave a connection or transaction behind, and are either stored verbatim or refused
with a clear error.

Hypothesis drives each backend from one event loop per test (its examples run in
order on that loop), so the Database and its pool live across examples.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, StatementError

from sqlalchemy_objects import Database, FieldError
from tests.conftest import open_database
from tests.models import User

VALID = {"id", "pk", "username", "email", "nickname", "status", "age", "articles"}
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


class Harness:
    """One event loop and one Database for the whole hypothesis run."""

    def __init__(self, backend: str, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.db: Database = self.run(open_database(backend, tmp_path, pool_size=5))
        self.statements: list[str] = []
        self.counter = itertools.count()
        event.listen(self.db.engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        try:
            assert self.db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
            self.run(self.db.dispose())
            self.run(self.db.drop_all())
            self.run(self.db.dispose())
        finally:
            self.loop.close()


@pytest.fixture(name="harness")
def _harness(backend: str, tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(backend, tmp_path)
    try:
        yield harness
    finally:
        harness.close()


names = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "__class__",
            "__dict__",
            "_sa_instance_state",
            "metadata",
            "objects",
            "DoesNotExist",
            "1=1; DROP TABLE users; --",
            "username\x00",
            "username__like",
            "username__exact__in",
            "email__regex",
            "articles__nope",
            "articles__title__bogus",
            "pk__in__x",
        ]
    ),
    st.builds(
        lambda a, b: f"{a}__{b}", st.sampled_from(sorted(VALID)), st.text(max_size=12)
    ),
)
_OPERATORS = {
    "exact",
    "iexact",
    "contains",
    "icontains",
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
    "in",
    "gt",
    "gte",
    "lt",
    "lte",
    "range",
    "isnull",
}


def _is_valid(name: str) -> bool:
    parts = name.split("__")
    if parts[0] not in VALID:
        return False
    if parts[0] == "articles":
        return len(parts) >= 2 and parts[1] in {
            "id",
            "title",
            "published",
            "author_id",
            "author",
        }
    return len(parts) == 1 or (len(parts) == 2 and parts[1] in _OPERATORS)


def test_unknown_names_raise_field_error_before_any_sql(harness: Harness) -> None:
    """Any name that is not a field or lookup: FieldError naming the model and the
    name, and not one statement sent."""

    @SETTINGS
    # "defaults" is get_or_create's own parameter (see test_units for a non-mapping).
    @given(
        name=names.filter(lambda n: not _is_valid(n) and n != "defaults"),
        value=st.text(max_size=5),
    )
    def check(name: str, value: str) -> None:
        harness.statements.clear()
        lookup: dict[str, Any] = {name: value}
        for call in (
            lambda: User.objects.get(**lookup),
            lambda: User.objects.get_or_create(**lookup),
            lambda: User.objects.get_or_create(username="x", defaults=lookup),
            lambda: User.objects.create(**lookup),
        ):
            with pytest.raises(FieldError) as info:
                harness.run(call())
            assert "User" in str(info.value)
            assert repr(info.value.name) in str(info.value)
        assert harness.statements == []

    check()


text_values = st.text(max_size=80) | st.sampled_from(
    [
        "",
        " ",
        "a ",
        "A",
        "ß",
        "İ",
        "💥" * 20,
        "'; DROP TABLE users; --",
        "%_\\",
        "x" * 64,
        "x" * 65,
        "\x00",
        "line\nbreak",
    ]
)


def test_values_are_stored_verbatim_or_refused_by_the_driver(harness: Harness) -> None:
    """Arbitrary text as lookup and defaults: either the row is created and reads back
    byte for byte, or the driver refuses a value the column cannot hold (too long, NUL
    on PostgreSQL); either way the next call works and nothing is left open."""

    @SETTINGS
    @given(name=text_values, email=text_values)
    def check(name: str, email: str) -> None:
        key = f"{next(harness.counter)}:{name}"
        try:
            user, created = harness.run(
                User.objects.get_or_create(username=key, defaults={"email": email})
            )
        except DBAPIError:
            pass  # e.g. StringDataRightTruncation, NUL in PostgreSQL text
        else:
            assert created
            again = harness.run(User.objects.get(id=user.id))
            assert (again.username, again.email) == (key, email)
            found, created = harness.run(User.objects.get_or_create(username=key))
            assert (found.id, created) == (user.id, False)
        assert harness.db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert harness.run(User.objects.filter(id=-1).exists()) is False

    check()


wrong_types = st.one_of(
    st.integers(),
    st.floats(allow_nan=True),
    st.binary(max_size=10),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.none(),
    st.booleans(),
)


def test_wrong_types_fail_cleanly(harness: Harness) -> None:
    """Values of the wrong type for a column either work (the driver converts them)
    or raise an error (TypeError/ValueError or SQLAlchemy's StatementError family);
    no call hangs, and the next call works."""

    @SETTINGS
    @given(
        field=st.sampled_from(
            [
                "username",
                "age",
                "email__in",
                "age__gte",
                "nickname__isnull",
                "age__range",
            ]
        ),
        value=wrong_types,
    )
    def check(field: str, value: Any) -> None:
        lookup = {field: value}
        if "__" not in field:
            lookup["username"] = lookup.get("username", f"w{next(harness.counter)}")
        with contextlib.suppress(
            TypeError, ValueError, StatementError, User.MultipleObjectsReturned
        ):
            harness.run(
                asyncio.wait_for(User.objects.get_or_create(**lookup), timeout=30)
            )
        assert harness.db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert isinstance(harness.run(User.objects.count()), int)

    check()
