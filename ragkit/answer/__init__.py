"""Answer: the `Answerer` protocol, the extractive and LLM answerers, citation checks and `ask()`."""

from .base import Answerer, verify_citations
from .extractive import ExtractiveAnswerer
from .pipeline import ask, load_answerer

__all__ = ["Answerer", "ExtractiveAnswerer", "ask", "load_answerer", "verify_citations"]
