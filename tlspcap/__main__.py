"""``python -m tlspcap``: the command line."""

from tlspcap.cli import main

main()
