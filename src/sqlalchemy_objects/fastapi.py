"""FastAPI (and any ASGI app): a session per request, committed or rolled back.

``app.add_middleware(SessionMiddleware, database=db)`` runs every HTTP and
WebSocket request inside a session, as ``async with db.session():`` would;
``Depends(session_dependency(db))`` does the same for the endpoints that ask for
it and hands them the ``AsyncSession``. ``FastAPI(lifespan=lifespan(db))``
creates tables at start-up if asked and closes the pool at shutdown.
``install_exception_handlers(app)`` answers ``Model.DoesNotExist`` with 404 and
``FieldError`` with 400, in FastAPI's ``{"detail": ...}`` shape.

Nothing here imports FastAPI itself: the middleware is plain ASGI, the
dependency a plain async generator and the exception handlers Starlette
responses, so the module also works with Starlette.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from .database import Database
from .exceptions import FieldError, ObjectDoesNotExist
from .session import idle

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = [
    "SessionMiddleware",
    "install_exception_handlers",
    "lifespan",
    "session_dependency",
]


class SessionMiddleware:
    """Run each HTTP/WebSocket request inside its own ambient session.

    The session is committed just before the response starts, so a failed
    COMMIT turns into a 500 instead of a success the client was already told
    about; writes made while a streaming body is sent are committed after it.
    A response with a status of *rollback_status* or above (an ``HTTPException``
    included) and any exception roll the request's writes back.

    Args:
        app: The ASGI application to wrap.
        database: The Database whose ``sessionmaker`` makes the sessions.
        rollback_status: The lowest status code that rolls back (default 400).
    """

    def __init__(
        self, app: ASGIApp, database: Database, rollback_status: int = 400
    ) -> None:
        self.app = app
        self.database = database
        self.rollback_status = rollback_status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        failed = False

        async def send_after_commit(message: Message) -> None:
            nonlocal failed
            if message["type"] == "http.response.start":
                failed = int(message["status"]) >= self.rollback_status
                await _end(session, failed)
            await send(message)

        async with self.database.ambient_session() as session:
            await self.app(scope, receive, send_after_commit)
            await _end(session, failed)


async def _end(session: AsyncSession, failed: bool) -> None:
    """Roll back or commit *session*'s transaction; nothing to do (a request
    that only read, its transaction already ended) costs nothing."""
    if idle(session):
        return
    if failed:
        await session.rollback()
    else:
        await session.commit()


def session_dependency(
    database: Database,
) -> Callable[[], AsyncGenerator[AsyncSession]]:
    """Return a FastAPI dependency that runs the request inside ``database.session()``.

    ``session: AsyncSession = Depends(session_dependency(db))`` gives the endpoint
    the session, which manager calls in the endpoint use too. It commits when the
    endpoint succeeds and rolls back when it raises (``HTTPException`` included).

    FastAPI runs the code after ``yield`` *after* the response is sent unless the
    dependency is declared with ``Depends(..., scope="function")``; use that (or
    :class:`SessionMiddleware`) when a failed COMMIT must become an error response.
    """

    async def request_session() -> AsyncGenerator[AsyncSession]:
        async with database.session() as session:
            yield session

    return request_session


def lifespan(
    database: Database, *, create_all: bool = False
) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """Return a lifespan for ``FastAPI(lifespan=...)``: optionally CREATE the tables
    at start-up, and always close the pool at shutdown."""

    @asynccontextmanager
    async def _lifespan(app: Any) -> AsyncGenerator[None]:
        if create_all:
            await database.create_all()
        try:
            yield
        finally:
            await database.dispose()

    return _lifespan


def install_exception_handlers(app: Any) -> None:
    """Answer the library's lookup errors the way FastAPI answers its own.

    - ``Model.DoesNotExist`` (any :class:`~sqlalchemy_objects.ObjectDoesNotExist`,
      e.g. from ``await User.objects.get(id=user_id)``): **404** with
      ``{"detail": "User not found"}``. The lookup's values are left out of
      the body (they may be private); the server's log has the full message.
    - :class:`~sqlalchemy_objects.FieldError` (an unknown field or lookup, as
      from a client's ``?order_by=``): **400** with ``{"detail": <the error's
      message, naming the model, the bad name and the valid ones>}``.

    *app* is a FastAPI (or Starlette) application; nothing else changes. With
    :class:`SessionMiddleware`, the request's writes are rolled back, as for
    every response of 400 or more.
    """
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        model = getattr(exc, "model", None)
        name = model.__name__ if isinstance(model, type) else "Object"
        return JSONResponse({"detail": f"{name} not found"}, status_code=404)

    async def bad_field(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    app.add_exception_handler(ObjectDoesNotExist, not_found)
    app.add_exception_handler(FieldError, bad_field)
