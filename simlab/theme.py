"""The JupyterLab theme (light or dark) that simlab's figures follow.

``simlab.plot-theme`` (dask config, default ``auto``) chooses: ``light`` or
``dark`` forces one; ``auto`` reads the theme the user picked in JupyterLab from
its settings file, ``themes.jupyterlab-settings`` under the user settings folder
(``$JUPYTERLAB_SETTINGS_DIR``, else ``<jupyter config dir>/lab/user-settings``),
then the same key in the environment's ``share/jupyter/lab/settings/overrides.json``.
A theme whose name contains "dark" is dark; anything else, or nothing found, is
light. A kernel cannot ask the browser, so a theme changed in the Lab shows in the
next figure drawn, once JupyterLab has saved the setting.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from simlab import settings

THEMES = ("light", "dark")
#: Where JupyterLab keeps the chosen theme, below a settings folder.
_THEME_FILE = Path("@jupyterlab", "apputils-extension", "themes.jupyterlab-settings")
_THEME_KEY = "@jupyterlab/apputils-extension:themes"


def lab_theme() -> str:
    """``"light"`` or ``"dark"``: the ``simlab.plot-theme`` setting or the Lab's.

    Examples
    --------
    >>> import dask.config
    >>> with dask.config.set({"simlab.plot-theme": "dark"}):
    ...     lab_theme()
    'dark'
    """
    chosen = settings.get("plot-theme", "auto")
    if chosen in THEMES:
        return chosen
    if chosen != "auto":
        raise ValueError(
            f"simlab.plot-theme is {chosen!r}; allowed: auto, {', '.join(THEMES)}"
        )
    name = lab_theme_name() or ""
    return "dark" if "dark" in name.lower() else "light"


def lab_theme_name() -> str | None:
    """The theme chosen in JupyterLab's settings ("JupyterLab Dark"), if any."""
    user = _read_settings(_user_settings_dir() / _THEME_FILE)
    if isinstance(user.get("theme"), str):
        return user["theme"]
    overrides = Path(sys.prefix, "share/jupyter/lab/settings/overrides.json")
    theme = _read_settings(overrides).get(_THEME_KEY, {})
    return theme.get("theme") if isinstance(theme, dict) else None


def _user_settings_dir() -> Path:
    """JupyterLab's user settings folder, found as JupyterLab finds it."""
    folder = os.environ.get("JUPYTERLAB_SETTINGS_DIR")
    if folder:
        return Path(folder)
    try:
        from jupyter_core.paths import jupyter_config_dir
    except ImportError:
        return Path.home() / ".jupyter" / "lab" / "user-settings"
    return Path(jupyter_config_dir()) / "lab" / "user-settings"


def _read_settings(path: Path) -> dict[str, Any]:
    """A JupyterLab settings file (JSON5: comments allowed); {} if unreadable."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    try:
        import json5

        data = json5.loads(text)
    except ImportError:
        data = _json_without_comments(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _json_without_comments(text: str) -> Any:
    """Plain JSON after dropping ``//`` comment lines (json5 not installed)."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("//")]
    try:
        return json.loads("\n".join(lines))
    except ValueError:
        return {}


def figure_rc(theme: str | None = None) -> dict[str, Any]:
    """matplotlib rcParams that draw a figure for ``theme`` (default: the Lab's).

    Light keeps matplotlib's defaults; dark is matplotlib's ``dark_background``
    style (light text, axes and ticks on black).
    """
    theme = theme or lab_theme()
    if theme == "light":
        return {}
    import matplotlib.style

    return dict(matplotlib.style.library["dark_background"])
