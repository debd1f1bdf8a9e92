"""How core functions report progress without knowing about terminals: a callback the CLI renders."""

from typing import Any, Protocol


class ProgressFn(Protocol):
    """(task description, steps done, steps in total, optional detail such as losses and it/s)."""

    def __call__(self, description: str, done: int, total: int, detail: str = "") -> None: ...


def no_progress(description: str, done: int, total: int, detail: str = "") -> None:
    """The default reporter: silent."""


class TqdmProgress:
    """A ProgressFn drawing one tqdm.auto bar per task: widgets in a notebook, text bars in a terminal.

    For the Python API, e.g. `run_evaluation(cfg, progress=TqdmProgress())`; the CLI draws rich bars instead.
    """

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def __call__(self, description: str, done: int, total: int, detail: str = "") -> None:
        from tqdm.auto import tqdm  # imported on first use: importing srtk does no work

        bar = self.bars.get(description)
        if bar is None:
            bar = self.bars[description] = tqdm(total=total, desc=description, leave=True)
        bar.total = total
        bar.update(done - bar.n)
        if detail:
            bar.set_postfix_str(detail, refresh=False)
        if done >= total:
            bar.close()
