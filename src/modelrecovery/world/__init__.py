"""The study's world: the embedded synthetic world and the human noise ceiling.
"""
