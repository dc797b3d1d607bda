"""A small FastAPI app: users, tags, and get_or_create on tag names.

    make demo-api          # serves it on http://127.0.0.1:8000 (embedded SQLite)
    curl -X POST localhost:8000/users -H 'content-type: application/json' \\
         -d '{"username": "ann", "email": "ann@example.com"}'
    curl -X PUT localhost:8000/users/ann/tags/python
    curl localhost:8000/tags/python

Run it on PostgreSQL with DATABASE_URL=postgresql://postgres@127.0.0.1/test.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sqlalchemy_objects import Database, ManagerMixin
from sqlalchemy_objects.fastapi import SessionMiddleware, lifespan


class Base(ManagerMixin, DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "demo_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(128))


class Tag(Base):
    __tablename__ = "demo_api_tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)


class UserTag(Base):
    __tablename__ = "demo_user_tags"
    __table_args__ = (UniqueConstraint("user_id", "tag_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("demo_users.id"))
    tag_id: Mapped[int] = mapped_column(ForeignKey("demo_api_tags.id"))


class NewUser(BaseModel):
    username: str
    email: str


def create_app(db: Database) -> FastAPI:
    """Build the app around *db* (the tests pass their own)."""
    db.bind(Base)
    app = FastAPI(
        title="sqlalchemy-objects demo", lifespan=lifespan(db, create_all=True)
    )
    app.add_middleware(SessionMiddleware, database=db)

    @app.post("/users", status_code=201)
    async def create_user(body: NewUser) -> dict[str, object]:
        try:
            user = await User.objects.create(username=body.username, email=body.email)
        except IntegrityError:
            raise HTTPException(409, f"user {body.username!r} already exists") from None
        return {"id": user.id, "username": user.username}

    @app.get("/users/{username}")
    async def get_user(username: str) -> dict[str, object]:
        try:
            user = await User.objects.get(username=username)
        except User.DoesNotExist:
            raise HTTPException(404, f"no user {username!r}") from None
        tags = await Tag.objects.filter(
            id__in=[
                link.tag_id for link in await UserTag.objects.filter(user_id=user.id)
            ]
        )
        return {
            "username": user.username,
            "email": user.email,
            "tags": [t.name for t in tags],
        }

    @app.put("/users/{username}/tags/{name}")
    async def tag_user(username: str, name: str) -> dict[str, object]:
        user = await User.objects.get_or_none(username=username)
        if user is None:
            raise HTTPException(404, f"no user {username!r}")
        tag, tag_created = await Tag.objects.get_or_create(name=name)
        _, linked = await UserTag.objects.get_or_create(user_id=user.id, tag_id=tag.id)
        return {"tag": tag.name, "tag_created": tag_created, "newly_linked": linked}

    @app.get("/tags/{name}")
    async def get_tag(name: str) -> dict[str, object]:
        tag = await Tag.objects.get_or_none(name=name)
        if tag is None:
            raise HTTPException(404, f"no tag {name!r}")
        users = await UserTag.objects.filter(tag_id=tag.id).count()
        return {"name": tag.name, "users": users}

    return app


app = create_app(Database())
