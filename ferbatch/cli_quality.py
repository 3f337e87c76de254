"""The commands about how far results can be trusted: ``ferbatch explain`` and
``ferbatch validate``. ``COMMANDS`` lists them for ``cli.py``."""

from __future__ import annotations

from .cli_explain import explain_command
from .cli_validate import validate_command

COMMANDS = [explain_command, validate_command]
