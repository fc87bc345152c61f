"""Figures follow the JupyterLab theme: read from the Lab's settings file or forced."""

from __future__ import annotations

from pathlib import Path

import dask.config
import numpy as np
import pytest
import xarray as xr
from matplotlib.colors import to_rgba

from simlab import plot, theme

# as JupyterLab 4 writes it (JSON5, with its comment header)
LAB_SETTINGS = """\
{
    // Theme
    // @jupyterlab/apputils-extension:themes
    // Theme manager settings.
    // *************************************

    // Selected Theme
    // Application-level visual styling theme
    "theme": "%s"
}
"""
BLACK, WHITE = to_rgba("black"), to_rgba("white")


@pytest.fixture
def lab_settings(tmp_path, monkeypatch):
    """Write JupyterLab's theme settings file into a private settings folder."""
    monkeypatch.setenv("JUPYTERLAB_SETTINGS_DIR", str(tmp_path))
    folder = tmp_path / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True)

    def choose(name: str) -> Path:
        path = folder / "themes.jupyterlab-settings"
        path.write_text(LAB_SETTINGS % name)
        return path

    return choose


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("JupyterLab Dark", "dark"),
        ("JupyterLab Dark High Contrast", "dark"),
        ("JupyterLab Light", "light"),
    ],
)
def test_auto_follows_the_theme_chosen_in_jupyterlab(lab_settings, name, expected):
    lab_settings(name)
    assert theme.lab_theme_name() == name
    assert theme.lab_theme() == expected


def test_no_lab_settings_means_light(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_SETTINGS_DIR", str(tmp_path / "none"))
    monkeypatch.setattr(theme.sys, "prefix", str(tmp_path))
    assert theme.lab_theme_name() is None
    assert theme.lab_theme() == "light"


def test_the_setting_overrides_the_lab_and_is_checked(lab_settings):
    lab_settings("JupyterLab Dark")
    with dask.config.set({"simlab.plot-theme": "light"}):
        assert theme.lab_theme() == "light"
    with (
        dask.config.set({"simlab.plot-theme": "blue"}),
        pytest.raises(ValueError, match=r"plot-theme is 'blue'; allowed: auto, light"),
    ):
        theme.lab_theme()


def _figure_colours(fig):
    ax = fig.axes[0]
    return {
        "figure": fig.get_facecolor(),
        "label": to_rgba(ax.xaxis.label.get_color()),
        "tick": to_rgba(ax.xaxis.get_ticklabels()[0].get_color()),
        "title": to_rgba(ax.title.get_color()),
    }


def test_projection_is_drawn_light_or_dark_as_the_lab(lab_settings):
    positions = np.random.default_rng(0).uniform(0.0, 50.0, size=(2000, 3))
    lab_settings("JupyterLab Dark")
    dark = _figure_colours(plot.projection(positions, 50.0, n_pixels=32))
    assert dark == {"figure": BLACK, "label": WHITE, "tick": WHITE, "title": WHITE}
    lab_settings("JupyterLab Light")
    light = plot.projection(positions, 50.0, n_pixels=32)
    assert _figure_colours(light) == {
        "figure": WHITE, "label": BLACK, "tick": BLACK, "title": BLACK,
    }  # fmt: skip


def test_power_spectrum_lines_and_shading_use_the_themes_text_colour(lab_settings):
    # a lattice-started run early on: below the shot noise L³/N at high k
    box, n_side = 100.0, 32
    k = np.arange(1, n_side + 1) * 2 * np.pi / box
    shot = box**3 / n_side**3
    pk = xr.DataArray(20 * k**-1.5, dims="k", coords={"k": k})
    pk.attrs.update(
        box_size=box, n_mesh=2 * n_side, n_particles=n_side**3, shot_noise=shot,
        shot_noise_subtracted=1, a=0.1,
    )  # fmt: skip
    lab_settings("JupyterLab Dark")
    fig = plot.power_spectrum({"run": pk}, linear=(k, 2e4 * k**-1.5))
    main, lower = fig.axes
    assert fig.get_facecolor() == BLACK
    linear = next(line for line in main.lines if line.get_label() == "linear theory")
    assert to_rgba(linear.get_color()) == WHITE
    assert to_rgba(main.patches[0].get_facecolor())[:3] == WHITE[:3]
    assert to_rgba(lower.lines[-1].get_color()) == WHITE
    with dask.config.set({"simlab.plot-theme": "light"}):
        fig = plot.power_spectrum({"run": pk}, linear=(k, 2e4 * k**-1.5))
    linear = next(ln for ln in fig.axes[0].lines if ln.get_label() == "linear theory")
    assert to_rgba(linear.get_color()) == BLACK and fig.get_facecolor() == WHITE


def test_a_figure_passed_in_keeps_its_own_look(lab_settings):
    from matplotlib.figure import Figure

    lab_settings("JupyterLab Dark")
    fig = Figure()
    positions = np.random.default_rng(0).uniform(0.0, 50.0, size=(2000, 3))
    plot.projection(positions, 50.0, n_pixels=32, ax=fig.add_subplot())
    assert fig.get_facecolor() == WHITE
