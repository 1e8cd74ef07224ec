"""Why and how often models are recovered: aggregation, identifiability,
metric agreement, geometry, parameter recovery and figures. Imports no torch.
"""
