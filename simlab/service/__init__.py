"""The run service: the one door every face (Python, CLI, REST, widgets) goes through.

It validates a run (the config's own field checks, then the engine's options and
the cluster profile), creates its run directory, hands it to the dispatcher that
owns the run root, and gives back a :class:`~simlab.service.run.Run` handle.
Analysis that spans runs (``compare``), the cost model, sweeps, results and the
group space live here too: above dispatch, below the faces.
"""
