"""What a Python process this package starts (the app's Streamlit server, local Ray workers) needs to
import this same package, and not a folder named `emotionnet` in the current folder.

`python -m ...` puts the current folder first on `sys.path`, and Ray puts the driver's current folder
on its workers' path. Where that folder holds a folder named `emotionnet` (what `git clone` makes),
it was imported instead of an editable install (a namespace package: "cannot import name
'load_model' from 'emotionnet' (unknown location)", or "model file not found" for the shipped model).

The environment to start from is an argument: the library reads none (the command line hands its own on).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def package_search_path(inherited: str | None = None) -> str:
    """PYTHONPATH that puts the folder this `emotionnet` was imported from first (a real package on the
    search path wins over a folder without `__init__.py`, wherever that stands), `inherited` (the
    caller's PYTHONPATH, if any) after it."""
    import emotionnet

    here = str(Path(emotionnet.__file__).resolve().parents[1])
    return os.pathsep.join(p for p in (here, inherited) if p)


def child_environment(environ: Mapping[str, str], **extra: str) -> dict[str, str]:
    """`environ` (the starting process's environment) for a `python -m ...` child: the current folder not
    put first on its `sys.path` (PYTHONSAFEPATH), this package found first (PYTHONPATH), plus `extra`."""
    return dict(environ, PYTHONSAFEPATH="1", PYTHONPATH=package_search_path(environ.get("PYTHONPATH")), **extra)
