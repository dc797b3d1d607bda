"""Type variables shared by the modules (this module is private)."""

from __future__ import annotations

from typing import TypeVar

#: The model class a Manager or QuerySet works on.
ModelT = TypeVar("ModelT")
#: Any model class (the owner a descriptor is read from).
OwnerT = TypeVar("OwnerT")
