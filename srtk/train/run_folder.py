"""A run folder: the files one training run writes, and the rule that a run never mixes with another.

`--resume` needs the folder's training state; without it, a folder that holds a run (finished or not) is refused
unless `overwrite` is asked for, which removes that run's files (and nothing else) before the new run starts.
"""

import shutil
from pathlib import Path

from srtk.config.train import CheckpointConfig
from srtk.errors import ConfigError
from srtk.train.run_log import LOG_FILE

STATE_FILE, CONFIG_FILE, RESULT_FILE = "last.state.pt", "config.json", "result.json"
LAST_MODEL, BEST_MODEL, FINAL_MODEL = "last.safetensors", "best.safetensors", "final.safetensors"
TENSORBOARD_FOLDER = "tensorboard"
MODELS = (LAST_MODEL, BEST_MODEL, FINAL_MODEL)
# Everything a run writes: model cards sit beside their weights with the .json suffix.
RUN_FILES = (STATE_FILE, CONFIG_FILE, RESULT_FILE, LOG_FILE, *MODELS, *(Path(m).stem + ".json" for m in MODELS))


def prepare_run_folder(checkpoint: CheckpointConfig) -> None:
    """Refuse to mix two runs in `checkpoint.out_dir` (ConfigError before any work), or clear the old one."""
    folder = checkpoint.out_dir
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: is a file; the run's output must be a folder")
    if checkpoint.resume:
        if not (folder / STATE_FILE).is_file():
            raise ConfigError(f"{folder}: no run to resume (no {STATE_FILE}); start it without --resume")
        return
    present = [name for name in RUN_FILES if (folder / name).exists()]
    if not present:
        return
    finished = (folder / RESULT_FILE).exists() or (folder / FINAL_MODEL).exists()
    if not checkpoint.overwrite:
        kind = "a finished run" if finished else "an unfinished run"
        raise ConfigError(
            f"{folder}: holds {kind} ({', '.join(present[:3])}); continue it with --resume, replace it with "
            "--overwrite, or choose another --out"
        )
    for name in present:
        (folder / name).unlink()
    shutil.rmtree(folder / TENSORBOARD_FOLDER, ignore_errors=True)
