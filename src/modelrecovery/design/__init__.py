"""Which triplets to collect: the information of a triplet, the static and adaptive
designs, and their export for people.
"""
