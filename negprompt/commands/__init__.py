"""Sub-commands of the ``negprompt`` command line (see :mod:`negprompt.cli`)."""
