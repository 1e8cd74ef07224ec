"""The ``modelrecovery`` command line: one module per stage, each registering its
subcommands; :mod:`.main` dispatches and turns errors into one line."""
