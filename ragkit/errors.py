"""Errors the library raises; the CLI maps every RagkitError to exit code 1."""

from __future__ import annotations


class RagkitError(Exception):
    """Base class: the message names the file, line or setting and the fix."""

    exit_code = 1


class TranscriptError(RagkitError):
    """A source file cannot be read or parsed."""


class CorpusError(RagkitError):
    """The corpus path is missing or holds nothing to index."""


class IndexFormatError(RagkitError):
    """An index on disk is corrupt, incomplete or of an unknown format."""


class MissingIndexError(RagkitError):
    """No index exists at the given path."""


class EmbedderMismatchError(RagkitError):
    """The query embedder differs from the one the index was built with."""


class EmbedderError(RagkitError):
    """An embedder spec cannot be loaded."""


class IndexLockedError(RagkitError):
    """Another process is writing the index."""


class MissingDependencyError(RagkitError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed; install it with: pip install \"ragkit[{extra}]\"")


class AnswerError(RagkitError):
    """The answer stage failed (for example an LLM endpoint did not answer)."""

    exit_code = 3


class UsageError(RagkitError):
    """A bad option value caught inside the library (the CLI exits 2)."""

    exit_code = 2
