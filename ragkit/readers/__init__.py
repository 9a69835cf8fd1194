"""Readers: transcript files (podcast text, subtitles, speech-to-text JSON, meeting JSON, prose) to Documents of Turns."""

from .corpus import FILE_READERS, JSON_READERS, detect_format, iter_source_files, read_corpus, read_document, read_json_transcript
from .decoding import Decoded, decode_bytes, read_source_text
from .meeting_json import read_qmsum
from .speakers import SPEAKERS_FILE, apply_speakers, resolve_speakers

__all__ = [
    "FILE_READERS", "JSON_READERS", "SPEAKERS_FILE", "Decoded", "apply_speakers", "decode_bytes", "detect_format", "iter_source_files",
    "read_corpus", "read_document", "read_json_transcript", "read_qmsum", "read_source_text", "resolve_speakers",
]
