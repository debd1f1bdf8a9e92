"""The errors srtk raises for bad input: each carries one line that names the file and the problem."""


class SrtkError(Exception):
    """A user-facing error: the CLI prints its message as one line and exits non-zero."""


class ImageReadError(SrtkError):
    """An input image is missing, empty, truncated, corrupt or of absurd size."""


class DatasetNotFoundError(SrtkError):
    """A benchmark name resolved to no folder and could not be downloaded."""


class ConfigError(SrtkError):
    """An option or config file names something unknown or inconsistent."""


class CheckpointError(SrtkError):
    """A checkpoint file is missing, corrupt or of an unknown layout."""


class SrtkWarning(UserWarning):
    """Something the user asked for that works but departs from the papers (the CLI prints it as one line)."""
