"""The study's world: the embedded synthetic world and the human noise ceiling (the
user's own world comes in through :mod:`modelrecovery.importers`)."""
