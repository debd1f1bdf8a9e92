"""How core functions report progress without knowing about terminals: a callback the CLI renders."""

from collections.abc import Callable

# (task description, steps done, steps in total); the CLI draws it as a rich progress bar.
ProgressFn = Callable[[str, int, int], None]


def no_progress(description: str, done: int, total: int) -> None:
    """The default reporter: silent."""
