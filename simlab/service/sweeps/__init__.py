"""Parameter sweeps: one executed papermill notebook per point, results as xarray.

``validation`` checks every point before anything runs, ``driver`` creates the
points' runs and hands them to the dispatcher, ``collect`` gathers what the
notebooks recorded into one Dataset.
"""

from simlab.service.sweeps.driver import RESULTS_FILE, Sweep, sweep
from simlab.service.sweeps.validation import (
    SweepError,
    SweepValidationError,
    config_fields,
    field_names,
)

__all__ = [
    "RESULTS_FILE",
    "Sweep",
    "SweepError",
    "SweepValidationError",
    "config_fields",
    "field_names",
    "sweep",
]
