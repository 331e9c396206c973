"""``python -m vmshare``: the same command line as ``vmshare``."""

from vmshare.cli import main

main()
