"""How core functions report progress without knowing about terminals: a callback the CLI renders."""

from typing import Protocol


class ProgressFn(Protocol):
    """(task description, steps done, steps in total, optional detail such as losses and it/s)."""

    def __call__(self, description: str, done: int, total: int, detail: str = "") -> None: ...


def no_progress(description: str, done: int, total: int, detail: str = "") -> None:
    """The default reporter: silent."""
