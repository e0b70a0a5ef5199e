"""``python -m consumer_api.cli``: the ``consumer-api`` command."""
from consumer_api.cli import main

main()
