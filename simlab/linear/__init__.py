"""Linear theory behind :mod:`simlab.cosmology`, one concern per module.

- :mod:`simlab.linear.background`: parameters, radiation density, E(a), growth tables
- :mod:`simlab.linear.eisenstein_hu`: Eisenstein & Hu (1998) transfer functions
- :mod:`simlab.linear.tables`: transfer or P(k) tables read from CAMB / CLASS files
- :mod:`simlab.linear.boltzmann`: transfer functions computed by CAMB or CLASS

Use :mod:`simlab.cosmology` (the public functions); these modules are its parts.
Nothing here imports camb or classy until a transfer function from them is asked for.
"""
