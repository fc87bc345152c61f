"""simlab's version, read by hatchling and by ``simlab.__version__``."""

__version__ = "0.1.0"
