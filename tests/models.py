"""The models every test uses (imported by worker processes too)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any, Self

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Numeric,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from sqlalchemy_objects import Manager, ManagerMixin, QuerySet


class Base(ManagerMixin, DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(128), default="")
    nickname: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    status: Mapped[str] = mapped_column(String(16), server_default="new")
    age: Mapped[int] = mapped_column(default=0)

    articles: Mapped[list[Article]] = relationship(back_populates="author")

    __table_args__ = (CheckConstraint("age >= 0", name="ck_users_age"),)


class PublishedManager(Manager["Article"]):
    """Only published articles (a custom manager, as in Django)."""

    def get_queryset(self) -> QuerySet[Article]:
        return super().get_queryset().filter(published=True)


class ArticleQuerySet(QuerySet["Article"]):
    """A custom QuerySet: its methods chain with the built-in ones."""

    def published(self) -> Self:
        return self.filter(published=True)

    def titled(self, prefix: str) -> Self:
        return self.filter(title__startswith=prefix)

    async def titles(self) -> list[str]:
        return [a.title for a in await self.order_by("title")]


#: Django's Manager.from_queryset (the custom methods are copied at run time,
#: where type checkers cannot see them).
ArticleManager: type[Manager[Article]] = Manager.from_queryset(ArticleQuerySet)


class Article(Base):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200), unique=True)
    published: Mapped[bool] = mapped_column(default=False)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    author: Mapped[User] = relationship(back_populates="articles")

    published_objects = PublishedManager()
    stories = ArticleQuerySet.as_manager()
    story_manager = ArticleManager()


class Note(Base):
    """A side table for "the caller's earlier writes"."""

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(200))


class Tag(Base):
    """Plain columns and no Python-side default: get_or_create's one-statement
    path sends its SELECT and its INSERT through the driver's cursor."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(64), server_default="")
    code: Mapped[str | None] = mapped_column(String(16), unique=True)


class Level(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Setting(Base):
    """Columns whose values SQLAlchemy converts (Numeric, Enum, JSON): the
    one-statement path runs them through execute(), never the bare cursor."""

    __tablename__ = "settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    ratio: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    level: Mapped[Level | None] = mapped_column(Enum(Level, name="setting_level"))
    data: Mapped[Any] = mapped_column(JSON, nullable=True)


class Counter(Base):
    """Nullable columns with defaults: an explicit None must store NULL, as in
    Django, not the default."""

    __tablename__ = "counters"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    count: Mapped[int | None] = mapped_column(default=2)
    level: Mapped[int | None] = mapped_column(server_default="3")
    seen: Mapped[dt.datetime | None] = mapped_column(DateTime)
    day: Mapped[dt.date | None] = mapped_column(Date)
    active: Mapped[bool | None] = mapped_column(Boolean)
    code: Mapped[str | None] = mapped_column(String(16))
    ratio: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))

    __table_args__ = (
        # Unique among the rows that have a code only (a partial index where
        # the backend has them): in_bulk() must not take it as unique.
        Index(
            "ix_counters_code",
            "code",
            unique=True,
            postgresql_where=text("code IS NOT NULL"),
            sqlite_where=text("code IS NOT NULL"),
        ),
    )

    @property
    def title(self) -> str:
        """A property with a setter: Django takes it in create() and defaults."""
        return self.name

    @title.setter
    def title(self, value: str) -> None:
        self.name = value.lower()


class Event(Base):
    """Keyset pagination: non-null ordering columns of several types, with an
    index on (at, id)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(16))
    score: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    level: Mapped[Level] = mapped_column(Enum(Level))
    note: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_events_at_id", "at", "id"),)


class Visit(Base):
    """A time-zone-aware column (TIMESTAMPTZ on PostgreSQL; SQLite and
    MariaDB keep the UTC wall time)."""

    __tablename__ = "visits"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Reading(Base):
    """A composite unique key (sensor, day): bulk_get_or_create on two fields."""

    __tablename__ = "readings"

    id: Mapped[int] = mapped_column(primary_key=True)
    sensor: Mapped[str] = mapped_column(String(32))
    day: Mapped[dt.date] = mapped_column(Date)
    value: Mapped[int] = mapped_column(default=0)

    __table_args__ = (UniqueConstraint("sensor", "day", name="uq_readings_sensor_day"),)


def _token() -> str:
    return uuid.uuid4().hex


class Stamp(Base):
    """A column whose default is a Python callable, called per row."""

    __tablename__ = "stamps"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token: Mapped[str] = mapped_column(String(32), default=_token)


item_tags = Table(
    "item_tags",
    Base.metadata,
    Column("item_id", ForeignKey("items.id"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id"), primary_key=True),
)


class Item(Base):
    """Many-to-many to Tag, and a parent chain: Django's multi-valued and
    outer-join lookup rules."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("items.id"))

    tags: Mapped[list[Tag]] = relationship(secondary=item_tags)
    parent: Mapped[Item | None] = relationship(remote_side=[id])


class Animal(Base):
    """Joined-table inheritance: update() on Dog may set Animal's columns."""

    __tablename__ = "animals"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))

    __mapper_args__ = {  # noqa: RUF012 - SQLAlchemy's own spelling
        "polymorphic_on": "kind",
        "polymorphic_identity": "animal",
    }


class Dog(Animal):
    __tablename__ = "dogs"

    animal_id: Mapped[int] = mapped_column(ForeignKey("animals.id"), primary_key=True)
    breed: Mapped[str] = mapped_column(String(64), default="")

    __mapper_args__ = {"polymorphic_identity": "dog"}  # noqa: RUF012


def user_values(**overrides: Any) -> dict[str, Any]:
    return {"username": "ann", "email": "ann@example.com", **overrides}
