"""Backend and driver facts: what differs between PostgreSQL, MySQL/MariaDB and SQLite.

One module per backend, each a :class:`~.base.Backend` whose attributes and
small methods are the facts (peewee's "dialect differences as data"): the rest
of the library asks ``backend.is_unique_violation(exc)`` instead of branching on
a backend name. Nothing here runs a statement of its own.

This package also turns a URL into one with an async driver.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy.dialects.postgresql import distinct_on as _pg_distinct_on
from sqlalchemy.engine import URL, make_url

from ..exceptions import ConfigurationError
from .base import Backend
from .mysql import MySQL
from .postgresql import PostgreSQL
from .sqlite import RollbackOnCloseConnection, SQLite, SqliteBegin

__all__ = [
    "DEFAULT_URL",
    "Backend",
    "RollbackOnCloseConnection",
    "SqliteBegin",
    "backend_named",
    "backend_of",
    "missing_driver",
    "normalise_url",
    "pop_pgbouncer",
]

_BACKENDS: Final[dict[str, Backend]] = {
    b.name: b for b in (PostgreSQL(), MySQL(), SQLite())
}
#: A backend none of our modules knows: no error counts as a race.
_UNKNOWN: Final = Backend()
#: URL schemes that name a backend, and the backend each stands for.
_SCHEMES: Final = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
}
#: The embedded database used when neither a URL nor DATABASE_URL is given.
DEFAULT_URL: Final = "sqlite+aiosqlite:///sqlalchemy_objects.sqlite3"


def backend_named(name: str) -> Backend:
    """The facts of the backend SQLAlchemy calls *name* (``mariadb`` is MySQL's)."""
    return _BACKENDS.get(_SCHEMES.get(name, name), _UNKNOWN)


def distinct_on(stmt: Any, columns: list[Any]) -> Any:
    """*stmt* with ``DISTINCT ON (columns)``: PostgreSQL's only; other backends
    cannot compile it (callers check :attr:`Backend.distinct_on` first)."""
    return stmt.ext(_pg_distinct_on(*columns))


def backend_of(bindable: Any) -> Backend:
    """The facts of the backend behind *bindable* (a session, connection or
    engine, sync or async)."""
    bind = bindable.get_bind() if hasattr(bindable, "get_bind") else bindable
    return backend_named(bind.dialect.name)


def normalise_url(raw: str | URL) -> URL:
    """Return *raw* as a URL with an async driver (``postgres://`` -> asyncpg)."""
    try:
        url = make_url(raw)
    except Exception as exc:  # ArgumentError, ValueError: all mean "not a URL"
        raise ConfigurationError(f"Cannot parse database URL {raw!r}: {exc}") from exc
    if "+" not in url.drivername:
        scheme = url.drivername
        if scheme not in _SCHEMES:
            raise ConfigurationError(
                f"Unsupported database URL scheme {scheme!r}; use one of "
                f"{', '.join(sorted(_SCHEMES))} (with or without +driver)."
            )
        backend = _BACKENDS[_SCHEMES[scheme]]
        url = url.set(drivername=f"{backend.name}+{backend.default_driver}")
    return url


#: The extra that installs each async driver (``pip install "sqlalchemy-objects[x]"``).
DRIVER_EXTRAS: Final[dict[str, tuple[str, str]]] = {
    "asyncpg": ("asyncpg", "postgresql"),
    "psycopg": ("psycopg", "psycopg"),
    "asyncmy": ("asyncmy", "mysql"),
    "aiomysql": ("aiomysql", "aiomysql"),
    "aiosqlite": ("aiosqlite", "sqlite"),
}


def missing_driver(url: URL, exc: ImportError) -> ConfigurationError:
    """The error for a URL whose driver is not installed: it names the extra."""
    driver = url.get_driver_name()
    shown = url.render_as_string(hide_password=True)
    known = DRIVER_EXTRAS.get(driver)
    if known is None:
        return ConfigurationError(
            f"The driver of {shown!r} ({driver}) cannot be imported: {exc}"
        )
    package, extra = known
    return ConfigurationError(
        f"{shown!r} needs the {package} driver, which is not installed "
        f'({exc}). Install it with: pip install "sqlalchemy-objects[{extra}]" '
        f"(or pip install {package})."
    )


_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


def pop_pgbouncer(url: URL) -> tuple[URL, bool | None]:
    """*url* without its ``pgbouncer`` query parameter, and that parameter's
    value (None if absent)."""
    raw = url.query.get("pgbouncer")
    if raw is None:
        return url, None
    value = raw[-1] if isinstance(raw, tuple) else raw
    if value.lower() not in _TRUE | _FALSE:
        raise ConfigurationError(f"?pgbouncer= takes true or false, not {value!r}")
    return url.difference_update_query(["pgbouncer"]), value.lower() in _TRUE
