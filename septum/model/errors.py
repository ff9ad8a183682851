"""Located model errors: every mistake in a model file points at ``file:line:col``."""

from __future__ import annotations

from dataclasses import dataclass

from septum.errors import SeptumError


@dataclass(frozen=True, order=True)
class Location:
    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class ModelIssue:
    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: error: {self.message}"


class ModelError(SeptumError):
    """The model could not be loaded. Holds every problem found, each with its location."""

    def __init__(self, issues: list[ModelIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.location, i.message))
        super().__init__("\n".join(str(i) for i in self.issues))
