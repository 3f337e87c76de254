"""Print ferbatch's dependencies (and those of the extras named as arguments) from pyproject.toml.

The images install them in a layer of their own before the package's source is copied, so a
change to ``ferbatch/`` rebuilds only the small last layer (pip cannot install a project's
dependencies without the project). Usage: ``python3 requirements.py pyproject.toml export serve``.
Standard library only (tomllib, Python 3.11+): it runs in the bare base image.
"""

import sys
import tomllib


def requirements(pyproject: str, extras: list[str]) -> list[str]:
    """The requirement strings of ``[project] dependencies`` and of each named extra.

    Raises ``KeyError`` naming an extra that pyproject.toml does not define."""
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    found = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise KeyError(f"{pyproject}: no extra {extra!r} (has: {', '.join(sorted(optional))})")
        found += optional[extra]
    return found


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1], sys.argv[2:])))
