"""Readers: pick a reader for each source file and read it, or a whole corpus, into Documents of Turns.

Decoding lives in decoding.py, the plain-text readers in text_formats.py and the QMSum reader in qmsumjson.py;
subtitle and speech-to-text JSON formats are dispatched through FILE_READERS and JSON_READERS.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..datatypes import Document, Turn
from ..errors import CorpusError, TranscriptError
from .decoding import Decoded, decode_bytes, read_source_text
from .line_styles import BY_NAME, detect_style, parse_timestamp
from .meeting_json import _load_json, read_qmsum
from .notes import collecting
from .speakers import SPEAKERS_FILE, apply_speakers, corpus_speakers, resolve_speakers
from .speech_json import is_aws, is_segments, is_turn_list, read_aws, read_segments_json, read_turn_list
from .subtitles import read_srt, read_vtt
from .text_formats import _CHAT, _front_matter, _Lines, read_chat, read_podcast, read_prose

# Names that lived here before the readers moved out keep working: `from ragkit.transcripts import decode_bytes`.
__all__ = [
    "FILE_READERS", "JSON_READERS", "JSON_SUFFIXES", "TEXT_SUFFIXES", "Decoded", "decode_bytes",
    "CorpusRead", "detect_format", "glob_escape", "iter_source_files", "parse_timestamp", "read_chat", "read_corpus", "read_corpus_report", "read_document", "unique_sources",
    "read_json_transcript", "read_podcast", "read_prose", "read_qmsum", "read_source_text",
]

log = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".text", ".transcript", ""}
JSON_SUFFIXES = {".json"}


# ---------------------------------------------------------------- dispatch


def detect_format(path: Path, text: str) -> str:
    """Pick a reader by content first (a .txt holding WebVTT, a .vtt holding SRT), then by suffix, then by line style."""
    suffix = path.suffix.lower()
    sniffed = _sniff(text)
    if suffix in FILE_READERS:
        return ".vtt" if sniffed == ".vtt" else suffix  # a .vtt without its WEBVTT line is repaired by read_vtt
    if suffix in JSON_SUFFIXES:
        return "json"
    if sniffed:
        return sniffed
    body = text[:200_000]
    lines = [ln for ln in body.split("\n") if ln.strip()]
    style = detect_style(lines)
    if style is not None:
        return style.name
    chat = sum(1 for ln in lines if _CHAT.match(ln))
    if lines and chat >= 2 and chat >= 0.6 * len(lines):
        return "chat"
    return "prose"


_SRT_START = re.compile(r"\s*\d+[ \t]*\r?\n[ \t]*\d+:[0-5]\d:[0-5]\d[,.]\d{1,3}[ \t]*-->")


def _sniff(text: str) -> str | None:
    """A subtitle or JSON file recognised by how it starts, whatever its name."""
    head = text[:4096].lstrip("\ufeff \t\r\n")
    if re.match(r"WEBVTT(?:[ \t\r\n]|$)", head):
        return ".vtt"
    if _SRT_START.match(head):
        return ".srt"
    if head.startswith("{") or re.match(r"\[\s*(?:\{|\])", head):
        return "json"
    return None



def read_document(path: str | Path, source: str | None = None, speakers: dict[str, str] | None = None) -> Document:
    """Read one transcript or prose file into a Document; `speakers` maps labels to names corpus-wide."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TranscriptError(f"{path}: cannot read ({exc.strerror}); check the path and permissions") from exc
    with collecting() as notes:
        return _read(path, data, source, speakers, notes)


def _read(path: Path, data: bytes, source: str | None, speakers: dict[str, str] | None, notes: list[str]) -> Document:
    decoded = decode_bytes(data, str(path))
    text = decoded.text
    source = source or path.name
    fmt = detect_format(path, text)
    lines = _Lines(text)
    meta, body = _front_matter(text, lines) if fmt not in ("json", *FILE_READERS) else ({}, 0)
    meta = {**meta, **_sidecar(path)}
    if fmt in FILE_READERS:
        turns = FILE_READERS[fmt](text, str(path))
    elif fmt == "json":
        # An empty .json is an empty file like any other (skipped by read_corpus), not invalid JSON.
        turns, fmt = read_json_transcript(text, str(path)) if text.strip() else ([], fmt)
    elif fmt in BY_NAME:
        turns = read_podcast(text, body, BY_NAME[fmt])
    elif fmt == "chat":
        turns = read_chat(text, body)
    else:
        turns = read_prose(text, body)
    turns, speaker_map = apply_speakers(turns, resolve_speakers(path, speakers))
    # JSON escapes can hold lone surrogates ("\\ud800"), which no UTF-8 output can carry.
    turns = [replace(t, speaker=scrub(t.speaker)) if t.speaker and _SURROGATE.search(t.speaker) else t for t in turns]
    title = scrub(meta.get("title") or _default_title(path))
    return Document(
        source=source,
        title=title,
        text=text,
        turns=tuple(turns),
        date=meta.get("date") or None,
        format=fmt,
        sha256=hashlib.sha256(data).hexdigest(),
        url=_http_url(meta.get("url"), path),
        path=str(path.resolve()),
        speaker_map=speaker_map,
        notes=tuple(notes),
    )


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def scrub(text: str) -> str:
    """Lone surrogates (from JSON escapes) as U+FFFD, so every later UTF-8 encode succeeds."""
    return _SURROGATE.sub("\ufffd", text)


def _http_url(url: str | None, path: Path) -> str | None:
    """A sidecar url only when it is a plain http(s) address: it becomes a link that people click."""
    if not url:
        return None
    if re.fullmatch(r"https?://[^\s\x00-\x1f\x7f]+", url):
        return url
    log.warning("%s: sidecar url %r is not an http(s) address; no links for this source", path, url[:80])
    return None


def read_json_transcript(text: str, name: str) -> tuple[list[Turn], str]:
    """JSON transcripts: QMSum meetings, and the JSON formats registered in JSON_READERS."""
    data = _load_json(text, name)
    if isinstance(data, dict) and "meeting_transcripts" in data:
        return read_qmsum(text, name)[0], "qmsum"
    for fmt, (accepts, reader) in JSON_READERS.items():
        if accepts(data):
            return reader(text, data, name), fmt
    raise TranscriptError(
        f"{name}: unrecognized JSON transcript; expected QMSum 'meeting_transcripts' or a supported JSON format"
    )


# JSON formats as name -> (accepts(data), reader(text, data, name)), other files by suffix as ".vtt" ->
# reader(text, name). Offsets must point into `text`.
JSON_READERS: dict[str, tuple[Callable[[object], bool], Callable[[str, object, str], list[Turn]]]] = {
    "aws-transcribe": (is_aws, read_aws),
    "whisper": (is_segments, read_segments_json),
    "turn-list": (is_turn_list, read_turn_list),
}
FILE_READERS: dict[str, Callable[[str, str], list[Turn]]] = {".vtt": read_vtt, ".srt": read_srt}
_SOURCE_SUFFIXES = frozenset(TEXT_SUFFIXES | JSON_SUFFIXES | set(FILE_READERS))


def _sidecar(path: Path) -> dict[str, str]:
    """Metadata from `<stem>.meta.json` or `<stem>.json` beside a non-JSON source."""
    for candidate in (path.with_name(path.stem + ".meta.json"), path.with_suffix(".json")):
        if candidate == path or not candidate.is_file():
            continue
        try:
            data = json.loads(read_source_text(candidate))
        except json.JSONDecodeError as exc:
            raise TranscriptError(f"{candidate}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
        except RecursionError:
            raise TranscriptError(f"{candidate}: JSON nested too deeply to be a sidecar") from None
        if isinstance(data, dict) and not _looks_like_transcript(data):
            return {k: str(v) for k, v in data.items() if isinstance(v, (str, int, float))}
    return {}


def _looks_like_transcript(data: dict) -> bool:
    return "meeting_transcripts" in data or "turns" in data or is_segments(data) or is_aws(data)


def _default_title(path: Path) -> str:
    """The file name as words; a generic stem (`captions`, `transcript`, `index`) is prefixed with its folder's name."""
    stem = re.sub(r"[-_]+", " ", path.stem).strip() or path.name
    if path.stem.lower() in _GENERIC_STEMS and path.resolve().parent.name:
        folder = re.sub(r"[-_]+", " ", path.resolve().parent.name).strip()
        return folder if path.stem.lower() in ("index", "readme") else f"{folder} {stem}"
    return stem


def _is_sidecar(path: Path) -> bool:
    if path.suffix.lower() != ".json":
        return False
    if path.name.endswith(".meta.json"):
        return True
    siblings = [p for p in path.parent.glob(glob_escape(path.stem) + ".*") if p != path and p.is_file()]
    return any(p.suffix.lower() != ".json" and _is_source_file(p) for p in siblings)


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _is_source_file(path: Path) -> bool:
    return path.suffix.lower() in _SOURCE_SUFFIXES


def iter_source_files(
    paths: Sequence[str | Path], *, follow_symlinks: bool = False, on_skip: Callable[[str], None] | None = None,
) -> list[tuple[Path, str]]:
    """Files under the given paths with their source names (relative to the folder given).

    Unreadable folders are reported and skipped. A symlink that leads outside its corpus folder (to
    `/proc/self/status`, to someone's home) is reported and skipped unless `follow_symlinks`.
    """
    found: list[tuple[Path, str]] = []
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise CorpusError(f"{root}: no such file or folder; pass an existing transcript file or folder")
        if root.is_file():
            found.append((root, root.name))
            continue
        inside = os.path.realpath(root)
        # Strings and DirEntry flags, not Paths and stat calls: an archive has thousands of files, and every update
        # and `ragkit info` lists them all.
        for parts, name, link, regular in sorted(_scan(str(root), inside, follow_symlinks, on_skip)):  # by parts, as Paths sort
            suffix = os.path.splitext(parts[-1])[1].lower()
            suffix = "" if suffix == "." else suffix  # as Path.suffix: "notes." has none
            if suffix not in _SOURCE_SUFFIXES or parts[-1] == SPEAKERS_FILE:
                continue
            path = Path(name)
            if suffix == ".json" and _is_sidecar(path):
                continue
            if (follow_symlinks or not link or _within(path, inside, on_skip)) and regular:
                found.append((path, "/".join(parts)))
    return found


def _scan(top: str, inside: str, follow_symlinks: bool, on_skip: Callable[[str], None] | None) -> list[tuple[tuple[str, ...], str, bool, bool]]:
    """(parts below top, path, is a symlink, is a regular file once links are followed) of every file under top,
    hidden names left out. Linked folders are entered only with follow_symlinks; one leading out of the corpus is
    reported. An unreadable folder is reported and skipped."""
    out: list[tuple[tuple[str, ...], str, bool, bool]] = []
    stack: list[tuple[str, tuple[str, ...]]] = [(top, ())]
    while stack:
        folder, base = stack.pop()
        try:
            with os.scandir(folder) as found:
                entries = list(found)
        except OSError as exc:
            _skip(f"{exc.filename or folder}: cannot read this folder ({exc.strerror}); skipped", on_skip)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
                link = entry.is_symlink()
                regular = not is_dir and entry.is_file()
            except OSError:
                is_dir, link, regular = False, False, False
            if is_dir:
                if not link:
                    stack.append((entry.path, (*base, entry.name)))
                elif follow_symlinks:
                    stack.append((entry.path, (*base, entry.name)))
                else:
                    _within(Path(entry.path), inside, on_skip)  # not entered; reported when it leads out of the corpus
                continue
            out.append(((*base, entry.name), entry.path, link, regular))
    return out


def _within(path: Path, root: str, on_skip: Callable[[str], None] | None) -> bool:
    """Whether path (a symlink or not) stays inside the corpus folder root; a link out of it is reported."""
    if not path.is_symlink():
        return True
    real = os.path.realpath(path)
    if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
        return True
    _skip(f"{path}: a symbolic link to {real}, outside the corpus; skipped (pass --follow-symlinks to index it)", on_skip)
    return False


# A file changed this recently gets no stamp: coarse file-system clocks could give a second write the same times.
RACY_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class CorpusRead:
    """The documents of a corpus and what reading it skipped, repaired or could not recognise (one line each)."""

    documents: list[Document]
    skipped: tuple[str, ...] = ()
    repaired: tuple[str, ...] = ()
    unrecognised: tuple[str, ...] = ()
    # With `known`: sources whose files are as the index recorded them, left unread; `order` lists every source
    # (read or kept) in corpus order; `fingerprints` holds each read source's fingerprint, `stamps` its stamp.
    kept: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    fingerprints: dict[str, str] = field(default_factory=dict)
    stamps: dict[str, str] = field(default_factory=dict)


def fingerprint(path: Path, source: str, speakers: Mapping[str, str], real_folder: str | None = None) -> str:
    """What a source's Document depends on: ragkit's version, its name and path, its bytes, its sidecars and the
    corpus speakers mapping. Equal fingerprints mean an update may keep the indexed source without reading it again.
    `real_folder` is the resolved folder of path when the caller knows it (resolving each file's path costs more
    than hashing it)."""
    from .. import __version__

    name = str(path)
    real = os.path.join(real_folder, path.name) if real_folder and not os.path.islink(name) else os.path.realpath(name)
    h = hashlib.sha256(f"{__version__}\0{source}\0{real}\0".encode("utf-8", "surrogatepass"))
    with open(name, "rb") as fh:
        h.update(fh.read())
    stem = os.path.splitext(name)[0]
    for candidate in (stem + ".meta.json", stem + ".json"):  # the sidecars _sidecar and source_speakers read
        if candidate != name and os.path.isfile(candidate):
            with open(candidate, "rb") as fh:
                h.update(b"\0sidecar\0" + fh.read())
    h.update(b"\0speakers\0" + json.dumps(speakers, sort_keys=True).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def stamp(path: Path, source: str, speakers: str, real_folder: str | None = None, siblings: frozenset[str] | None = None) -> str:
    """What the file system says of a source without reading it: size, mtime, ctime and inode of the file and its
    sidecars, with the name, real path, speakers mapping (as JSON) and ragkit version. Equal stamps mean unchanged
    bytes as surely as `git status` knows it (ctime cannot be set back by hand); "" for a file changed in the last
    RACY_SECONDS, where a second write within the clock's granularity could leave every field as it was.
    `siblings` (the names in the file's folder, when known) saves looking for sidecars that are not there."""
    from .. import __version__

    name = str(path)
    info = os.lstat(name)
    linked = stat.S_ISLNK(info.st_mode)
    real = os.path.join(real_folder, path.name) if real_folder and not linked else os.path.realpath(name)
    parts = [__version__, source, real, speakers]
    infos: list[os.stat_result | None] = [os.stat(name) if linked else info]
    stem = os.path.splitext(name)[0]
    for candidate in (stem + ".meta.json", stem + ".json"):
        if candidate == name or (siblings is not None and os.path.basename(candidate) not in siblings):
            infos.append(None)
            continue
        try:
            infos.append(os.stat(candidate))
        except OSError:
            infos.append(None)
    newest = 0
    for found in infos:
        if found is None:
            parts.append("-")
            continue
        parts.append(f"{found.st_size}:{found.st_mtime_ns}:{found.st_ctime_ns}:{found.st_ino}")
        newest = max(newest, found.st_mtime_ns, found.st_ctime_ns)
    if time.time_ns() - newest < RACY_SECONDS * 1e9:
        return ""
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def read_corpus(*paths: str | Path, on_skip: Callable[[str], None] | None = None, follow_symlinks: bool = False) -> list[Document]:
    """Read every transcript under the given files or folders; unreadable and empty files are skipped with a warning."""
    return read_corpus_report(*paths, on_skip=on_skip, follow_symlinks=follow_symlinks).documents


def read_corpus_report(
    *paths: str | Path, on_skip: Callable[[str], None] | None = None, follow_symlinks: bool = False, strict: bool = False,
    known: Mapping[str, tuple[str, str]] | None = None, stamps: Mapping[str, tuple[str, str]] | None = None,
) -> CorpusRead:
    """Read a corpus; a file that cannot be read is skipped with one warning naming file, line and reason.

    Every problem of the run is reported, not only the first. With strict, any skipped file is an error
    (raised after all files were tried, before anything is written). `known` maps indexed sources to their
    (fingerprint, text sha256): a file whose fingerprint is unchanged is kept, not read (its warnings were given
    when it was read). `stamps` maps sources to their recorded (stamp, fingerprint): a file whose stamp is unchanged
    is taken to have that fingerprint without hashing it (`ragkit info`; an update hashes every file).
    """
    paths = paths or ("seeds",)
    skipped: list[str] = []

    def skip(message: str) -> None:
        skipped.append(message)
        _skip(message, on_skip)

    files = iter_source_files(paths, follow_symlinks=follow_symlinks, on_skip=skip)
    if not files:
        raise CorpusError(f"{', '.join(map(str, paths))}: no transcript files found (.txt, .md, .json, ...)")
    items: list[tuple[str, Document | None, str]] = []  # (source, document or None when kept, text sha256)
    repaired, unrecognised, prints, stamped = [], [], {}, {}
    names = unique_sources([source for _, source in files], [path for path, _ in files])
    for (path, _), source, (speakers, print_, stamp_) in zip(files, names, _fingerprints(files, names, stamps or {})):
        if known and print_ and known.get(source, ("", ""))[0] == print_:
            items.append((source, None, known[source][1]))
            continue
        try:
            doc = read_document(path, source, corpus_speakers(path, source) if speakers is None else speakers)
        except TranscriptError as exc:
            skip(f"{exc}; skipped")
            continue
        if not any(t.text.strip() for t in doc.turns):
            skip(f"{path}: empty, whitespace-only or only front matter; no text to index; skipped")
            continue
        if doc.notes:
            repaired.append(f"{path}: repaired {len(doc.notes)} defect(s): {'; '.join(doc.notes[:3])}" + ("; ..." if len(doc.notes) > 3 else ""))
            _skip(repaired[-1], None)
        if _missed_format(doc):
            unrecognised.append(f"{path}: read as plain prose: no speakers or times recognised; see README 'Formats' for the exports ragkit reads")
            _skip(unrecognised[-1], None)
        prints[source], stamped[source] = print_, stamp_
        items.append((source, doc, text_sha(doc.text)))
    if strict and skipped:
        raise CorpusError(f"{len(skipped)} file(s) could not be read (each reported above); fix them, or leave out --strict to skip them")
    if not items:
        first = ("" if len(skipped) == 1 else "first: ") + skipped[0].removesuffix("; skipped") if skipped else ""
        first = f" ({first})" if first else ""
        raise CorpusError(f"{', '.join(map(str, paths))}: every file is empty or unreadable; nothing to index{first}")
    items = _dedupe(items, skip)
    return CorpusRead(
        [doc for _, doc, _ in items if doc is not None], tuple(skipped), tuple(repaired), tuple(unrecognised),
        tuple(source for source, doc, _ in items if doc is None), tuple(source for source, _, _ in items), prints, stamped,
    )


def _fingerprints(
    files: Sequence[tuple[Path, str]], names: Sequence[str], stamps: Mapping[str, tuple[str, str]],
) -> list[tuple[dict[str, str] | None, str, str]]:
    """Each file's corpus speakers, fingerprint and stamp ((None, "", "") when they cannot be had: reading the file
    reports why). A file whose stamp equals its recorded one in `stamps` gets the recorded fingerprint, unhashed.

    The speakers file is looked up and each folder resolved once per folder, not once per file: an update and
    `ragkit info` fingerprint every file of the archive. (Hashing in threads was measured slower: 0.50 s against
    0.24 s for 5,000 files.)"""
    speakers_by_folder: dict[tuple[Path, int], tuple[dict[str, str] | None, str]] = {}
    folders: dict[Path, tuple[str, frozenset[str] | None]] = {}  # real path and names of each folder
    jobs = []
    for (path, _), source in zip(files, names):
        parent = path.parent  # a new Path each time it is asked for: 5,000 files made 15,000
        key = (parent, source.count("/") + 1)  # the speakers file depends on the folder and the source's depth
        if key not in speakers_by_folder:
            try:
                found = corpus_speakers(path, source)
                speakers_by_folder[key] = (found, json.dumps(found, sort_keys=True))
            except TranscriptError:
                speakers_by_folder[key] = (None, "")
        if parent not in folders:
            try:
                listing: frozenset[str] | None = frozenset(os.listdir(parent))
            except OSError:
                listing = None
            folders[parent] = (os.path.realpath(parent), listing)
        jobs.append((path, source, *speakers_by_folder[key], *folders[parent]))

    def one(job: tuple[Path, str, dict[str, str] | None, str, str, frozenset[str] | None]) -> tuple[dict[str, str] | None, str, str]:
        path, source, speakers, speakers_json, real, siblings = job
        if speakers is None:
            return None, "", ""
        try:
            now = stamp(path, source, speakers_json, real, siblings)
            recorded = stamps.get(source)
            if now and recorded and recorded[0] == now:
                return speakers, recorded[1], now
            return speakers, fingerprint(path, source, speakers, real), now
        except OSError:
            return None, "", ""

    return [one(job) for job in jobs]


def text_sha(text: str) -> str:
    """The decoded text's sha256, so a copy that differs only in BOM, encoding or line ends is a duplicate."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


_TIMESTAMP = re.compile(r"(?<![\d:])\d{1,2}:[0-5]\d(?::[0-5]\d)?(?![\d:])")
_LABEL_LINE = re.compile(r"^\W{0,3}[A-Z][\w .'-]{0,30}\W{0,3}:\s", re.M)


def _missed_format(doc: Document) -> bool:
    """A file over 2 KB read without any speaker or time although many lines hold times or `Name:` labels."""
    if len(doc.text) < 2048 or any(t.speaker or t.start is not None for t in doc.turns):
        return False
    lines = doc.text.count("\n") + 1
    timed = sum(1 for line in doc.text.split("\n") if _TIMESTAMP.search(line[:40]))
    labelled = len(_LABEL_LINE.findall(doc.text))
    return max(timed, labelled) >= max(5, lines // 10)


_GENERIC_STEMS = {
    "captions", "caption", "subtitles", "subtitle", "subs", "transcript", "transcription", "index", "readme", "audio",
    "video", "output", "result", "results", "text", "en", "english", "recording",
}


def unique_sources(sources: Sequence[str], files: Sequence[Path]) -> list[str]:
    """Source ids that tell files apart: `captions.srt` in two folders given separately become `ep1/captions.srt`
    and `ep2/captions.srt` (more parent folders are added until every id is unique)."""
    out = list(sources)
    for depth in range(1, 64):
        seen: dict[str, int] = {}
        for name in out:
            seen[name] = seen.get(name, 0) + 1
        clashes = [i for i, name in enumerate(out) if seen[name] > 1]
        if not clashes:
            return out
        for i in clashes:
            parents = files[i].resolve().parent.parts[1:][-depth:]
            out[i] = "/".join((*parents, sources[i]))
    return out


def _skip(message: str, on_skip: Callable[[str], None] | None) -> None:
    log.warning(message)
    if on_skip:
        on_skip(message)


def _dedupe(items: Iterable[tuple[str, Document | None, str]], on_skip: Callable[[str], None] | None = None) -> list[tuple[str, Document | None, str]]:
    """Files with the same text under two names are indexed once; the duplicate is reported."""
    seen: dict[str, str] = {}
    out = []
    for source, doc, key in items:
        if key in seen:
            _skip(f"{source}: same text as {seen[key]}; indexed once", on_skip)
            continue
        seen[key] = source
        out.append((source, doc, key))
    return out
