"""Progress bars for submission, polling and parsing (rich; silent when disabled)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class RunProgress:
    def __init__(self, *, enabled: bool, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def _task(self, name: str) -> TaskID:
        if name not in self._tasks:
            self._tasks[name] = self._progress.add_task(name, total=0)
        return self._tasks[name]

    def grow(self, name: str, by: int) -> None:
        """More work for this bar (a new batch, a retry round)."""
        task = self._task(name)
        total = self._progress.tasks[self._tasks_index(task)].total or 0
        self._progress.update(task, total=total + by)

    def advance(self, name: str, by: int = 1) -> None:
        self._progress.advance(self._task(name), by)

    def set(self, name: str, completed: int, total: int) -> None:
        self._progress.update(self._task(name), completed=completed, total=total)

    def _tasks_index(self, task: TaskID) -> int:
        return next(i for i, t in enumerate(self._progress.tasks) if t.id == task)
