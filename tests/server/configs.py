"""Run configurations the server and browser tests submit."""

#: A PM run that finishes in about a second.
QUICK = {
    "box": {"size": 64.0, "particles_per_side": 8},
    "gravity": {"steps": 4},
    "outputs": {"redshifts": [1.0, 0.0]},
    "resources": {"cores": 1},
    "metadata": {"name": "quick"},
}
#: A PM run long enough to be cancelled while it runs.
SLOW = {
    "box": {"size": 64.0, "particles_per_side": 16},
    "gravity": {"steps": 20000, "mesh": 32},
    "outputs": {"power_spectra": False},
    "resources": {"cores": 1},
    "metadata": {"name": "slow"},
}
