"""One base class for errors a user can fix (bad params, bad data); stages print them
as one line and exit non-zero, while anything else keeps its traceback."""

from __future__ import annotations

from collections.abc import Sequence


class MpfasError(Exception):
    """An error in the user's inputs, with a message that names what to fix."""


def first_of(items: Sequence[str], shown: int = 10, sep: str = ", ") -> str:
    """The first ``shown`` items and how many more: a message names some, not thousands."""
    more = f" (+{len(items) - shown} more)" if len(items) > shown else ""
    return sep.join(items[:shown]) + more
