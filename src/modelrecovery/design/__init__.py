"""Which triplets to collect: the information of a triplet about the models, the static
and adaptive designs, and their export for people."""
