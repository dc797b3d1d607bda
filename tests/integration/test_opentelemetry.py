"""OpenTelemetry's SQLAlchemy instrumentation sees every statement we send,
the driver-cursor fast paths included: instrumenting an engine registers
cursor listeners, and the fast paths step aside for any listener, even one
added after they were first taken (checked against the statements each call
is known to send, spans from the in-memory exporter)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sqlalchemy_objects import Database
from tests.models import User


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    yield spans
    SQLAlchemyInstrumentor().uninstrument()


def statements(exporter: InMemorySpanExporter) -> list[str]:
    found = [
        str((s.attributes or {}).get("db.statement", ""))
        for s in exporter.get_finished_spans()
    ]
    exporter.clear()
    return [s for s in found if s]


def kinds(found: list[str]) -> list[str]:
    """The first keyword of each statement (BEGIN/COMMIT aside)."""
    words = [s.split(None, 1)[0].upper() for s in found]
    return [
        w
        for w in words
        if w not in {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}
    ]


async def test_every_statement_is_a_span_fast_paths_included(
    db: Database, exporter: InMemorySpanExporter
) -> None:
    # Take the fast paths first, before any instrumentation exists.
    for _ in range(3):
        await User.objects.get_or_create(username="warm")
        await User.objects.get(username="warm")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The instrumentation package declares "sqlalchemy < 2.1" and does
    # nothing on 2.1 unless told to skip that check (docs/deployments.md).
    SQLAlchemyInstrumentor().instrument(
        engine=db.engine.sync_engine,
        tracer_provider=provider,
        enable_commenter=False,
        skip_dep_check=True,
    )
    await User.objects.get(username="warm")
    assert kinds(statements(exporter)) == ["SELECT"]
    user, created = await User.objects.get_or_create(username="warm")  # a hit
    assert not created
    assert kinds(statements(exporter)) == ["SELECT"]
    user, created = await User.objects.get_or_create(username="new")  # a miss
    assert created
    sent = kinds(statements(exporter))
    assert "INSERT" in sent, sent
    assert await User.objects.filter(username__startswith="w").count() == 1
    assert kinds(statements(exporter)) == ["SELECT"]
    await User.objects.filter(id=user.id).update(age=3)
    assert kinds(statements(exporter)) == ["UPDATE"]
    async with db.session():
        await User.objects.get_or_create(username="in-session")
        await User.objects.get(username="in-session")
    sent = kinds(statements(exporter))
    assert sent.count("INSERT") == 1, sent
    assert sent[-1] == "SELECT", sent
    page = await User.objects.paginate(size=1)
    assert len(page.items) == 1
    assert kinds(statements(exporter)) == ["SELECT"]
    await User.objects.filter(username="new").delete()
    assert "DELETE" in kinds(statements(exporter))
