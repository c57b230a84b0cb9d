"""Where LibreOffice and the Python that can talk UNO live, and how that Python finds unoserver.

unoserver's server half must run under the interpreter that has the ``uno`` module: the
distribution's ``/usr/bin/python3`` with python3-uno, or ``program/python`` of an official
LibreOffice build. Our virtualenv has unoserver but not ``uno``; the system interpreter has
``uno`` but not unoserver. :func:`unoserver_pythonpath` bridges the two with a directory holding
only symlinks to the unoserver package, its metadata and our launcher of its server
(:mod:`conversion.kmop_unoserver`, run as :data:`UNOSERVER_MODULE`), so nothing else from the
virtualenv (compiled for another interpreter, other versions) leaks onto the system
interpreter's path.

Precedence of every setting: explicit argument, then environment variable, then detection.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from kmop.errors import ConversionError

SOFFICE_ENV = "KMOP_SOFFICE"
UNO_PYTHON_ENV = "KMOP_UNO_PYTHON"

#: The module the uno Python runs (``-m``): unoserver's server, loading documents hidden.
UNOSERVER_MODULE = "kmop_unoserver"

_SOFFICE_NAMES = ("soffice", "libreoffice")
_SYSTEM_PYTHON = Path("/usr/bin/python3")


def find_soffice(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The LibreOffice executable: ``explicit``, else ``$KMOP_SOFFICE``, else the first of
    ``soffice``/``libreoffice`` on ``PATH``."""
    env = os.environ if env is None else env
    chosen = explicit or env.get(SOFFICE_ENV)
    if chosen:
        return _executable(chosen, SOFFICE_ENV)
    for name in _SOFFICE_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ConversionError(
        f"LibreOffice not found: neither {' nor '.join(_SOFFICE_NAMES)} is on PATH; "
        f"install libreoffice-writer-nogui or set {SOFFICE_ENV}"
    )


def find_uno_python(soffice: str, explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The Python that can ``import uno``: ``explicit``, else ``$KMOP_UNO_PYTHON``, else the
    ``python`` shipped next to ``soffice`` (official LibreOffice builds), else
    ``/usr/bin/python3`` (distribution packages), else ``python3`` on ``PATH``.

    Whether it really has ``uno`` shows when the instance starts: unoserver then exits at once
    and the start error quotes its ``ModuleNotFoundError``.
    """
    env = os.environ if env is None else env
    chosen = explicit or env.get(UNO_PYTHON_ENV)
    if chosen:
        return _executable(chosen, UNO_PYTHON_ENV)
    bundled = Path(os.path.realpath(soffice)).parent / "python"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return str(bundled)
    if _SYSTEM_PYTHON.is_file():
        return str(_SYSTEM_PYTHON)
    found = shutil.which("python3")
    if found:
        return found
    raise ConversionError(f"no Python with the uno module found; set {UNO_PYTHON_ENV}")


def unoserver_pythonpath(into: Path) -> Path:
    """Fill ``into`` with symlinks to the installed unoserver package, its ``.dist-info`` and
    the launcher :data:`UNOSERVER_MODULE`.

    The metadata is needed too: ``unoserver.server`` reads its own version with
    ``importlib.metadata`` at import time. Returns ``into``, ready to be ``PYTHONPATH``.
    """
    spec = importlib.util.find_spec("unoserver")
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError("the unoserver package is not installed in this environment")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    into.mkdir(parents=True, exist_ok=True)
    (into / "unoserver").symlink_to(package_dir, target_is_directory=True)
    metadata_dir = _dist_info_dir("unoserver")
    (into / metadata_dir.name).symlink_to(metadata_dir, target_is_directory=True)
    (into / f"{UNOSERVER_MODULE}.py").symlink_to(Path(__file__).with_name(f"{UNOSERVER_MODULE}.py"))
    return into


def _dist_info_dir(distribution: str) -> Path:
    dist = importlib.metadata.distribution(distribution)
    for file in dist.files or ():
        if file.name == "METADATA" and file.parent.name.endswith(".dist-info"):
            return Path(str(dist.locate_file(file.parent)))
    raise ConversionError(f"installed {distribution} has no .dist-info directory to link")


def _executable(name: str, env_name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConversionError(f"{name!r} is not an executable file (set by argument or {env_name})")
    return found
