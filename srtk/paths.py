"""Checks of the paths a command reads and writes, made before any work: an output that cannot be written, or
one that would replace an input, is an error before the first image is read, never after the run."""

import os
from collections.abc import Iterable
from pathlib import Path

from srtk.errors import SrtkError


def _writable_parent(path: Path) -> None:
    """The nearest existing ancestor of `path` is a folder this process may create files in."""
    ancestor = path.parent
    while not ancestor.exists():
        if ancestor == ancestor.parent:
            break
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SrtkError(f"{path}: cannot be written, {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise SrtkError(f"{path}: cannot be written, no permission to write in {ancestor}")


def check_output_file(path: Path, *, suffixes: Iterable[str] = (), inputs: Iterable[Path] = ()) -> Path:
    """`path` can be written as a file: not a folder, in a writable place, with one of `suffixes` (any if none),
    and none of `inputs` (a command never overwrites what it reads)."""
    path = Path(path).expanduser()
    allowed = tuple(suffixes)
    if path.is_dir():
        raise SrtkError(f"{path}: is a folder; give a file name{f' ending in {allowed[0]}' if allowed else ''}")
    if allowed and path.suffix.lower() not in allowed:
        shown = f"'{path.suffix}'" if path.suffix else "no extension"
        choices = allowed[0] if len(allowed) == 1 else f"one of {', '.join(allowed)}"
        raise SrtkError(f"{path}: {shown}; the file name must end in {choices}")
    for source in inputs:
        if Path(source).exists() and path.exists() and path.resolve() == Path(source).resolve():
            raise SrtkError(f"{path}: is the input; srtk never overwrites an input, choose another output")
    _writable_parent(path)
    return path


def check_output_folder(path: Path) -> Path:
    """`path` can hold the command's outputs: an existing folder, or a new one in a writable place."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise SrtkError(f"{path}: is a file; the output must be a folder")
    if not path.exists():
        _writable_parent(path)
    elif not os.access(path, os.W_OK | os.X_OK):
        raise SrtkError(f"{path}: no permission to write in this folder")
    return path


def check_input_folder(path: Path, what: str) -> Path:
    """`path` is an existing folder (`what` names the option in the message, e.g. '--data-root')."""
    path = Path(path).expanduser()
    if not path.exists():
        raise SrtkError(f"{path}: no such folder ({what})")
    if not path.is_dir():
        raise SrtkError(f"{path}: is a file, not a folder ({what})")
    return path


def cache_folder(kind: str) -> Path:
    """srtk's cache of `kind` (datasets, onnx): $XDG_CACHE_HOME/srtk/KIND, default ~/.cache/srtk/KIND."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "srtk" / kind
