"""How the outside world talks to the engine: the Python client and the `visits` CLI."""
