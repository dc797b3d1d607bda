"""A small FastAPI app: users, their posts, tags, and get_or_create on tag names.

    make demo-api          # serves it on http://127.0.0.1:8000 (embedded SQLite)
    curl -X POST localhost:8000/users -H 'content-type: application/json' \\
         -d '{"username": "ann", "email": "ann@example.com"}'
    curl -X PUT localhost:8000/users/ann/tags/python
    curl localhost:8000/tags/python
    curl -X POST localhost:8000/users/ann/posts -H 'content-type: application/json' \\
         -d '{"title": "hello"}'
    curl 'localhost:8000/posts?size=20'          # then ?after=<next> for the next page

Unknown users, tags and posts answer 404 and an unknown ``order`` field 400
(``install_exception_handlers``); the list of posts is keyset-paginated
(``paginate()``); a background task counts each user's posts after the
response is sent, inside the request's session.

Run it on PostgreSQL with DATABASE_URL=postgresql://postgres@127.0.0.1/test.
"""

from __future__ import annotations

import datetime as dt

from fastapi import BackgroundTasks, FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import DateTime, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from sqlalchemy_objects import Database, F, ManagerMixin
from sqlalchemy_objects.fastapi import (
    SessionMiddleware,
    install_exception_handlers,
    lifespan,
)


class Base(ManagerMixin, DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "demo_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(128))
    posts_count: Mapped[int] = mapped_column(default=0)

    posts: Mapped[list[Post]] = relationship(back_populates="author")


class Post(Base):
    __tablename__ = "demo_posts"
    __table_args__ = (Index("ix_demo_posts_created_id", "created", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    created: Mapped[dt.datetime] = mapped_column(DateTime)
    author_id: Mapped[int] = mapped_column(ForeignKey("demo_users.id"))

    author: Mapped[User] = relationship(back_populates="posts")


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


class NewPost(BaseModel):
    title: str


class PostOut(BaseModel):
    id: int
    title: str
    author: str


class PostPage(BaseModel):
    items: list[PostOut]
    next: str | None


async def count_posts(user_id: int) -> None:
    """A background task: runs after the response, in the request's session."""
    await User.objects.filter(id=user_id).update(posts_count=F("posts_count") + 1)


def create_app(db: Database) -> FastAPI:
    """Build the app around *db* (the tests pass their own)."""
    db.bind(Base)
    app = FastAPI(
        title="sqlalchemy-objects demo", lifespan=lifespan(db, create_all=True)
    )
    app.add_middleware(SessionMiddleware, database=db)
    install_exception_handlers(app)  # DoesNotExist -> 404, FieldError -> 400

    @app.post("/users", status_code=201)
    async def create_user(body: NewUser) -> dict[str, object]:
        try:
            user = await User.objects.create(username=body.username, email=body.email)
        except IntegrityError:
            raise HTTPException(409, f"user {body.username!r} already exists") from None
        return {"id": user.id, "username": user.username}

    @app.get("/users/{username}")
    async def get_user(username: str) -> dict[str, object]:
        user = await User.objects.get(username=username)  # 404 if there is none
        tags = await Tag.objects.filter(
            id__in=[
                link.tag_id for link in await UserTag.objects.filter(user_id=user.id)
            ]
        )
        return {
            "username": user.username,
            "email": user.email,
            "posts": user.posts_count,
            "tags": [t.name for t in tags],
        }

    @app.post("/users/{username}/posts", status_code=201)
    async def create_post(
        username: str, body: NewPost, background: BackgroundTasks
    ) -> PostOut:
        user = await User.objects.get(username=username)
        post = await Post.objects.create(
            title=body.title,
            author=user,
            created=dt.datetime.now(dt.UTC).replace(tzinfo=None),
        )
        background.add_task(count_posts, user.id)
        return PostOut(id=post.id, title=post.title, author=user.username)

    @app.get("/posts")
    async def list_posts(
        after: str | None = None, size: int = 20, order: str = "-created"
    ) -> PostPage:
        """Newest first by default; ``order`` names any Post field (400 if
        unknown), ``after`` is the previous page's ``next``."""
        if not 1 <= size <= 100:
            raise HTTPException(422, "size must be between 1 and 100")
        try:
            page = (
                await Post.objects.select_related("author")
                .order_by(order)
                .paginate(after=after, size=size)
            )
        except ValueError as exc:  # a cursor that is not one of ours
            raise HTTPException(400, str(exc)) from None
        return PostPage(
            items=[
                PostOut(id=p.id, title=p.title, author=p.author.username)
                for p in page.items
            ],
            next=page.next,
        )

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
