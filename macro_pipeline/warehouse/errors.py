"""Errors the warehouse raises on purpose, each naming what was asked or what was wrong."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class LookAheadError(RuntimeError):
    """A point-in-time read asked for data that could only be known after its decision time."""


@dataclass(frozen=True)
class Problem:
    """One broken validation rule: which rule, what it means, and where (row labels).

    ``total``: how many rows break it when ``rows`` names only the first few (a check run in the
    database returns a sample and a count); ``examples``: one line per shown row, saying what is
    wrong with it (values, times).
    """

    rule: str
    detail: str
    rows: Sequence[int]
    row_word: str = "line"
    total: int | None = None
    examples: Sequence[str] = ()

    def describe(self, shown: int = 5) -> str:
        rows = list(self.rows)
        shown = max(shown, len(self.examples))
        count = len(rows) if self.total is None else self.total
        head = ", ".join(str(r) for r in rows[:shown])
        more = f", ... ({count} in all)" if count > min(shown, len(rows)) else ""
        where = f"{count} row(s), {self.row_word}s {head}{more}" if rows else "whole file"
        return "\n      ".join([f"[{self.rule}] {self.detail}: {where}", *self.examples])


class IngestValidationError(ValueError):
    """A file broke one or more validation rules; nothing was written."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} validation rule(s) failed; nothing was written"]
        lines += [f"  - {p.describe()}" for p in problems]
        super().__init__("\n".join(lines))

    @property
    def rules(self) -> list[str]:
        return [p.rule for p in self.problems]
