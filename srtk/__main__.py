"""`python -m srtk` (and `torchrun -m srtk`) runs the CLI."""

from srtk.cli import main

main()
