"""modelrecovery: model-recovery experiments for representational alignment.

The package holds the science (odd-one-out likelihood, the torch fitting kernel,
calibration, simulation, recovery scoring, aggregation) and knows nothing of
Snakemake; the workflow calls it through the ``modelrecovery`` command line.
"""

__version__ = "0.1.0"
