"""Stage CLIs: one module per pipeline stage, each `python stages/<name>.py ...`."""
