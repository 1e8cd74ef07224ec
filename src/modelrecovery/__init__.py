"""modelrecovery: model-recovery experiments for representational alignment.

The package holds the science, one subpackage or module per stage of the study in the
order it runs (:mod:`.world`, :mod:`.align`, :mod:`.simulate`, :mod:`.recover`,
:mod:`.design`, :mod:`.analysis`), on shared modules (the odd-one-out model, sampling,
settings, :mod:`.io`, :mod:`.importers`) and the torch kernel (:mod:`.fitting`). It knows
nothing of Snakemake; the workflow calls it through the ``modelrecovery`` command line
(:mod:`.cli`). docs/DESIGN.md draws the tree.
"""

__version__ = "0.1.0"
