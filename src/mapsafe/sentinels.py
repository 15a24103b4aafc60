"""The MISSING and DELETE markers used by the compute family."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import Final

__all__ = ["MISSING", "DELETE"]


class _Sentinel:
    """A named singleton that survives pickling and copying as itself."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"mapsafe.{self._name}"

    def __reduce__(self) -> str:
        return self._name  # pickled by reference to the module attribute

    def __copy__(self) -> "_Sentinel":
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> "_Sentinel":
        return self

    def __bool__(self) -> bool:
        # A sentinel is never a value; refuse truth tests so `if old:` bugs surface.
        raise TypeError(f"{self!r} has no truth value; compare it with 'is'")


if TYPE_CHECKING:
    # What the checker sees: two one-member enums, so that `x is MISSING`
    # narrows `V | Missing` to `V` (at runtime both are _Sentinel instances).
    import enum

    class Missing(enum.Enum):
        MISSING = "MISSING"

    class Delete(enum.Enum):
        DELETE = "DELETE"

    MISSING: Final = Missing.MISSING
    DELETE: Final = Delete.DELETE
else:
    MISSING = _Sentinel("MISSING")  # passed to compute() callbacks when the key is absent
    DELETE = _Sentinel("DELETE")  # returned from compute() callbacks to remove the key
