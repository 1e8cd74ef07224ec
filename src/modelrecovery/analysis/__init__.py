"""Why and how often models are recovered: aggregation, identifiability, metric
agreement, geometry, parameter recovery, the designs compared, their intervals and
figures. Imports no torch."""
