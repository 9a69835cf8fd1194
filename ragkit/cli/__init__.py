"""CLI: the typer app (`ragkit index/search/ask/info/eval`) and its renderers; the only wing that prints."""

from . import commands, eval_commands, serve_commands  # noqa: F401  (each registers its commands on the app)
from .typer_app import app, main

__all__ = ["app", "main"]
