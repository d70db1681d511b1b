"""Command-line tools (``python -m core.tools.NAME``)."""
