"""docs/django-parity.md cannot drift from the QuerySet it describes."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy_objects import QuerySet

PAGE = Path(__file__).resolve().parents[2] / "docs" / "django-parity.md"
#: SPEC §4 (and §3) names a user may rely on; none may be ❌.
SPEC_NAMES = {
    "get_or_none",
    "update_or_create",
    "filter",
    "exclude",
    "all",
    "order_by",
    "first",
    "last",
    "count",
    "exists",
    "update",
    "delete",
    "bulk_create",
    "in_bulk",
    "values",
    "select_related",
    "prefetch_related",
    "__aiter__",
    "get",
    "create",
    "get_or_create",
    "paginate",
    "bulk_get_or_create",
}


def method_rows() -> list[tuple[list[str], str]]:
    """(our names, status) for each row of the Methods table."""
    text = PAGE.read_text(encoding="utf-8")
    table = text.split("## Methods", 1)[1].split("## Lookups", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in {"Django", "---"}:
            continue
        ours = re.findall(r"`([\w_]+)`", cells[1])
        rows.append((ours, cells[2]))
    return rows


def test_every_available_method_exists() -> None:
    rows = method_rows()
    assert len(rows) > 20
    for ours, status in rows:
        assert status in {"✅", "⚠️", "❌"}, status
        if status != "❌":
            assert ours, f"a {status} row names no method"
            for name in ours:
                assert hasattr(QuerySet, name), name


def test_every_public_method_is_in_the_table() -> None:
    listed = {name for ours, _ in method_rows() for name in ours}
    public = {
        name
        for name in vars(QuerySet)
        if not name.startswith("_") and name not in {"model"}
    }
    assert public <= listed, public - listed


def test_nothing_the_spec_names_is_missing() -> None:
    status_of = {name: status for ours, status in method_rows() for name in ours}
    for name in SPEC_NAMES:
        assert status_of.get(name) in {"✅", "⚠️"}, name
