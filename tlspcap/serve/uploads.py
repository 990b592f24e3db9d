"""Receiving an upload: a multipart/form-data body streamed to the job's files on disk.

The body is fed, chunk by chunk as it arrives, to python-multipart's streaming parser; file
parts go straight to their files (never held whole in memory), text fields are kept up to a few
kilobytes. The limits are checked as the bytes come: the whole body against ``--max-upload``,
the disk's free space every few megabytes, the number of parts, header sizes and field lengths.
File names are cleaned for display and stored as data, never used as paths.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from tlspcap.report.html import clean
from tlspcap.serve.config import MiB, format_size
from tlspcap.serve.paths import OPTION_FILES, JobPaths

CAPTURE_FIELD = "capture"
TEXT_FIELDS = ("host", "server_ciphers", "server_protocols")
CSRF_FIELD = "csrf_token"
MAX_CAPTURES = 64
MAX_TEXT = 4096
"""Longest text field, bytes."""
MAX_HEADERS = 8192
"""Most header bytes of one part."""
NAME_MAX = 255
"""Longest file name kept (characters)."""
OPTION_FILE_MAX = {"keylog": 64 * MiB, "ca_bundle": 16 * MiB, "nginx_conf": 1 * MiB}
"""Largest option file (they are read whole to check them)."""
DISK_CHECK_BYTES = 16 * MiB
"""Bytes received between two looks at the free disk space."""
KNOWN_FIELDS = (CAPTURE_FIELD, *OPTION_FILES, *TEXT_FIELDS, CSRF_FIELD)


class RequestError(Exception):
    """A request the service refuses: the HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        """``status`` is 4xx; ``message`` says what to change."""
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """A file of the upload."""

    name: str
    """Cleaned for display."""
    size: int


@dataclass(slots=True)
class UploadForm:
    """What an upload held."""

    captures: list[ReceivedFile] = field(default_factory=list)
    option_files: dict[str, ReceivedFile] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    """Text fields given (stripped, non-empty)."""


def display_name(raw: bytes | None, fallback: str) -> str:
    """A client's file name as shown: controls and bidi overrides replaced, at most
    :data:`NAME_MAX` characters; ``fallback`` when there is none."""
    text = clean(raw.decode("utf-8", errors="replace")).strip() if raw else ""
    return text[:NAME_MAX] or fallback


@dataclass(slots=True)
class _Part:
    name: str = ""
    filename: bytes | None = None
    out: BinaryIO | None = None
    size: int = 0
    limit: int = 0
    """Largest size of a file part (0: only the upload limit)."""
    text: bytearray = field(default_factory=bytearray)


class FormReceiver:
    """Parses one multipart body into a job's input directory.

    Feed it the body with :meth:`feed`, then call :meth:`finish`; both raise
    :class:`RequestError`. :meth:`close` closes any file left open (call it in any case).
    ``csrf`` (for browser forms) checks the ``csrf_token`` field, which must come first.
    """

    def __init__(
        self,
        boundary: bytes,
        paths: JobPaths,
        max_bytes: int,
        reserve: int,
        csrf: Callable[[str], bool] | None = None,
    ) -> None:
        """Write into ``paths``; refuse a body over ``max_bytes`` or one that would leave less
        than ``reserve`` bytes free on the disk."""
        self.paths = paths
        self.max_bytes = max_bytes
        self.reserve = reserve
        self.received = 0
        self.form = UploadForm()
        self._csrf = csrf
        self._csrf_ok = csrf is None
        self._next_disk_check = DISK_CHECK_BYTES
        self._part = _Part()
        self._headers: dict[bytes, bytes] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._header_bytes = 0
        try:
            self._parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                },
            )
        except (FormParserError, ValueError) as exc:
            raise RequestError(400, f"malformed multipart boundary: {exc}") from None

    # ---- driving -----------------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        """Parse the next piece of the body."""
        self.received += len(chunk)
        if self.received > self.max_bytes:
            raise too_large(self.max_bytes)
        if self.received >= self._next_disk_check:
            self._next_disk_check += DISK_CHECK_BYTES
            check_free_space(self.paths.root, self.reserve, 0)
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise RequestError(400, f"malformed multipart body: {exc}") from None

    def finish(self) -> UploadForm:
        """The body is complete: check what came."""
        try:
            self._parser.finalize()
        except FormParserError as exc:
            raise RequestError(400, f"malformed multipart body: {exc}") from None
        if self._part.out is not None:
            raise RequestError(400, "the multipart body ends inside a part")
        if not self.form.captures:
            raise RequestError(
                400,
                f"no capture in the upload: send the capture files in the form field "
                f"'{CAPTURE_FIELD}'",
            )
        return self.form

    def close(self) -> None:
        """Close the file being written, if any."""
        if self._part.out is not None:
            self._part.out.close()
            self._part.out = None

    # ---- parser callbacks ----------------------------------------------------------------
    def _on_part_begin(self) -> None:
        self._part = _Part()
        self._headers = {}
        self._header_bytes = 0

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_value += data[start:end]

    def _count_header(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_HEADERS:
            raise RequestError(400, f"a part's headers are over {MAX_HEADERS} bytes")

    def _on_header_end(self) -> None:
        self._headers[bytes(self._header_field).strip().lower()] = bytes(self._header_value).strip()
        self._header_field.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        disposition = self._headers.get(b"content-disposition")
        kind, params = parse_options_header(disposition)
        if kind != b"form-data" or b"name" not in params:
            raise RequestError(400, "a part has no Content-Disposition: form-data; name=...")
        part = self._part
        part.name = params[b"name"].decode("utf-8", errors="replace")
        part.filename = params.get(b"filename")
        if part.name not in KNOWN_FIELDS:
            shown = clean(part.name)[:40]
            raise RequestError(
                422, f"unknown form field {shown!r}; the fields are {', '.join(KNOWN_FIELDS)}"
            )
        if not self._csrf_ok and part.name != CSRF_FIELD:
            raise RequestError(403, "the form's CSRF token is missing: reload the page")
        if part.name == CAPTURE_FIELD:
            self._open_capture(part)
        elif part.name in OPTION_FILES:
            self._open_option_file(part)
        elif part.name in self.form.fields:
            raise RequestError(422, f"the field '{part.name}' is given twice")

    def _open_capture(self, part: _Part) -> None:
        if part.filename == b"":  # a file input left empty: browsers send an empty part
            return
        index = len(self.form.captures)
        if index >= MAX_CAPTURES:
            raise RequestError(422, f"at most {MAX_CAPTURES} captures per upload")
        self.form.captures.append(ReceivedFile(display_name(part.filename, "capture"), 0))
        part.out = self.paths.capture(index).open("xb")

    def _open_option_file(self, part: _Part) -> None:
        if part.filename == b"":
            return
        if part.name in self.form.option_files:
            raise RequestError(422, f"the field '{part.name}' is given twice")
        self.form.option_files[part.name] = ReceivedFile(display_name(part.filename, part.name), 0)
        part.limit = OPTION_FILE_MAX[part.name]
        part.out = self.paths.option(part.name).open("xb")

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        n = end - start
        part.size += n
        if part.out is not None:
            if part.limit and part.size > part.limit:
                raise RequestError(413, f"'{part.name}' is larger than {format_size(part.limit)}")
            part.out.write(data[start:end])
        elif part.name in (CSRF_FIELD, *TEXT_FIELDS):
            if part.size > MAX_TEXT:
                raise RequestError(422, f"the field '{part.name}' is longer than {MAX_TEXT} bytes")
            part.text += data[start:end]

    def _on_part_end(self) -> None:
        part = self._part
        if part.out is not None:
            part.out.close()
            part.out = None
            self._record_size(part)
            return
        if part.name not in (CSRF_FIELD, *TEXT_FIELDS):
            return
        try:
            value = part.text.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise RequestError(422, f"the field '{part.name}' is not UTF-8 text") from None
        if part.name == CSRF_FIELD:
            if self._csrf is not None and not self._csrf_ok:
                if not self._csrf(value):
                    raise RequestError(403, "the form's CSRF token is not valid: reload the page")
                self._csrf_ok = True
        elif value:
            self.form.fields[part.name] = value

    def _record_size(self, part: _Part) -> None:
        if part.name == CAPTURE_FIELD:
            last = self.form.captures[-1]
            self.form.captures[-1] = ReceivedFile(last.name, part.size)
        else:
            entry = self.form.option_files[part.name]
            self.form.option_files[part.name] = ReceivedFile(entry.name, part.size)


def too_large(limit: int) -> RequestError:
    """The 413 for an upload over ``--max-upload``."""
    return RequestError(
        413, f"the upload is larger than the limit of {format_size(limit)} (--max-upload)"
    )


def check_free_space(where: Path, reserve: int, needed: int) -> None:
    """Refuse (413) when writing ``needed`` more bytes under ``where`` would leave less than
    ``reserve`` bytes free."""
    free = shutil.disk_usage(where).free
    if free - needed < reserve:
        raise RequestError(
            413,
            f"not enough free disk space on the service for this upload ({format_size(free)} "
            f"free, {format_size(reserve)} kept in reserve)",
        )


def multipart_boundary(content_type: str | None) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type (415 for another type)."""
    kind, params = parse_options_header(content_type or "")
    if kind != b"multipart/form-data":
        raise RequestError(
            415, "send the upload as multipart/form-data (e.g. curl -F capture=@FILE)"
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise RequestError(400, "the multipart/form-data Content-Type has no boundary")
    return boundary
