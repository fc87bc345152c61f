"""Inline styles of the widgets, in JupyterLab's theme variables only.

Every colour is a ``--jp-*`` CSS variable, so the widgets follow the light and
dark themes (and high-contrast ones) without knowing which is active.
"""

from __future__ import annotations

#: Error messages: the theme's error colour.
ERROR = "color:var(--jp-error-color1)"
#: Help text and secondary facts: the theme's second font colour (contrast ≥ 4.5).
HELP = "color:var(--jp-content-font-color2);font-size:85%"
#: Secondary text at normal size (paths, counts).
MUTED = "color:var(--jp-content-font-color2)"
#: A log tail: the theme's code cell colours, scrolled inside its box.
LOG = (
    "max-height:14em;overflow:auto;font-size:85%;margin:0;padding:4px;"
    "background:var(--jp-cell-editor-background);"
    "color:var(--jp-content-font-color1);"
    "border:var(--jp-border-width) solid var(--jp-cell-editor-border-color)"
)
