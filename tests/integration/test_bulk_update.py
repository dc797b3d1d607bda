"""``bulk_update()``, Django's: one UPDATE per batch, the rows matched as
the answer, the checks Django makes. Each on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

from sqlalchemy_objects import Database, F, FieldError
from tests.conftest import StatementLog
from tests.models import Article, Dog, Item, User


async def people(n: int) -> list[User]:
    await User.objects.bulk_create([User(username=f"u{i}", age=i) for i in range(n)])
    return list(await User.objects.order_by("id"))


def updates(sql: StatementLog) -> int:
    return sql.count(lambda s: s.lstrip().upper().startswith("UPDATE"))


async def test_bulk_update_writes_each_objects_fields(
    db: Database, sql: StatementLog
) -> None:
    users = await people(5)
    for user in users:
        user.age = 40 + user.age
        user.email = f"{user.username}@x"
    users[0].nickname = None
    sql.statements.clear()
    assert await User.objects.bulk_update(users, ["age", "email"]) == 5
    assert updates(sql) == 1  # one UPDATE for the batch
    rows = await User.objects.order_by("id").values_list("username", "age", "email")
    assert rows == [(f"u{i}", 40 + i, f"u{i}@x") for i in range(5)]
    # batches: one UPDATE each, in one transaction
    for user in users:
        user.age = 7
    sql.statements.clear()
    assert await User.objects.bulk_update(users, ["age"], batch_size=2) == 5
    assert updates(sql) == 3
    assert set(await User.objects.values_list("age", flat=True)) == {7}
    # nothing to do: no statement
    sql.statements.clear()
    assert await User.objects.bulk_update([], ["age"]) == 0
    assert sql.statements == []


async def test_bulk_update_values_expressions_and_relationships(db: Database) -> None:
    users = await people(3)
    users[0].age = F("age") + 10  # type: ignore[assignment]
    users[1].age = "21"  # type: ignore[assignment]  # prepared as an int, as Django's
    users[2].nickname = None
    assert await User.objects.bulk_update(users, ["age", "nickname"]) == 3
    assert await User.objects.order_by("id").values_list("age", "nickname") == [
        (10, None),
        (21, None),
        (2, None),
    ]
    article = await Article.objects.create(title="t", author_id=users[0].id)
    article.author = users[2]  # set through the relationship: its key is written
    assert await Article.objects.bulk_update([article], ["author"]) == 1
    assert (await Article.objects.get(title="t")).author_id == users[2].id
    article.author = User(username="unsaved")
    with pytest.raises(
        ValueError,
        match="bulk_update\\(\\) prohibited to prevent data loss due to unsaved "
        "related object 'author'",
    ):
        await Article.objects.bulk_update([article], ["author"])
    # a joined-inheritance subclass: the parent table's column and its own
    rex = await Dog.objects.create(name="rex", breed="pug")
    rex.name, rex.breed = "max", "lab"
    assert await Dog.objects.bulk_update([rex], ["name", "breed"]) == 1
    assert await Dog.objects.values_list("name", "breed") == [("max", "lab")]


async def test_bulk_update_follows_djangos_rules(db: Database) -> None:
    users = await people(3)
    users[0].age = 50
    twin = await User.objects.get(pk=users[0].id)
    twin.age = 99
    # an object given twice: its first copy is written
    assert await User.objects.bulk_update([users[0], twin], ["age"]) == 1
    assert (await User.objects.get(pk=users[0].id)).age == 50
    # the QuerySet's filters apply, as in Django
    users[1].age, users[2].age = 60, 60
    assert await User.objects.filter(age__lt=2).bulk_update(users[1:], ["age"]) == 1
    assert await User.objects.order_by("id").values_list("age", flat=True) == [
        50,
        60,
        2,
    ]
    with pytest.raises(ValueError, match="Field names must be given"):
        await User.objects.bulk_update(users, [])
    with pytest.raises(ValueError, match="cannot be used with primary key fields"):
        await User.objects.bulk_update(users, ["id"])
    with pytest.raises(ValueError, match="only be used with concrete fields"):
        await User.objects.bulk_update(users, ["articles"])
    with pytest.raises(FieldError, match="'nope' into a column of User"):
        await User.objects.bulk_update(users, ["nope"])
    with pytest.raises(ValueError, match="must have a primary key set"):
        await User.objects.bulk_update([User(username="new")], ["age"])
    with pytest.raises(TypeError, match="takes User instances, not Item"):
        await User.objects.bulk_update([Item(name="x")], ["age"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="Batch size must be a positive integer"):
        await User.objects.bulk_update(users, ["age"], batch_size=0)
    users[0].age = "old"  # type: ignore[assignment]
    with pytest.raises(
        ValueError, match=r"Field 'age' expected a number but got 'old'\. \(User\.age\)"
    ):
        await User.objects.bulk_update(users, ["age"])


async def test_a_failing_batch_writes_nothing(db: Database) -> None:
    users = await people(4)
    for user in users:
        user.age = 30
    users[3].age = -1  # breaks the CHECK constraint in the second batch
    with pytest.raises(DBAPIError):  # IntegrityError; MariaDB: OperationalError
        await User.objects.bulk_update(users, ["age"], batch_size=2)
    assert await User.objects.order_by("id").values_list("age", flat=True) == [
        0,
        1,
        2,
        3,
    ]


async def test_bulk_update_in_a_session_leaves_nothing_to_flush(
    db: Database, sql: StatementLog
) -> None:
    await people(2)
    async with db.session():
        users = list(await User.objects.order_by("id"))
        for user in users:
            user.age = 70
        assert await User.objects.bulk_update(users, ["age"]) == 2
        sql.statements.clear()
    assert updates(sql) == 0  # the session's commit wrote nothing again
    assert await User.objects.values_list("age", flat=True) == [70, 70]
