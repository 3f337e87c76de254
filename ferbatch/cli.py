"""ferbatch's command line: ``run``, ``train``, ``evaluate``, ``models``, ``demo``."""

from __future__ import annotations

import click

from . import __version__
from .cli_train import COMMANDS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ferbatch")
def cli() -> None:
    """Facial-emotion timelines for folders of video, written to Parquet."""


for cmd in COMMANDS:
    cli.add_command(cmd)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
