"""Multipart bodies parsed as they stream in, with byte caps enforced per file and in total.

Starlette's ``request.form()`` spools every part to a temporary file before a route sees it,
so a size check in the route comes after a gigabyte has been written. Here the body is fed
chunk by chunk to ``python-multipart``'s incremental parser and counted on arrival: a part
over ``max_upload_bytes`` or a body over ``max_request_bytes`` is refused (413) at the chunk
that crosses the line, and a Content-Length over the cap before a byte is read. Nothing is
written to disk; what is kept in memory never exceeds the cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from imagegate.errors import GatewayError, PayloadTooLargeError, ValidationError
from imagegate.gateway import Gateway

if TYPE_CHECKING:  # the TypedDict exists only for type checkers
    from python_multipart.multipart import MultipartCallbacks

MAX_FIELD_BYTES = 1024 * 1024  # a text field (a prompt is at most 32,000 characters)
MAX_FIELDS = 64


@dataclass(frozen=True)
class FilePart:
    name: str  # the form field
    filename: str | None
    content_type: str | None  # as the client labelled it
    data: bytes


@dataclass
class Form:
    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[FilePart] = field(default_factory=list)

    def field(self, name: str) -> str | None:
        return next((value for key, value in self.fields if key == name), None)

    def files_named(self, *names: str) -> list[FilePart]:
        return [part for part in self.files if part.name in names]


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int
    max_total_bytes: int
    max_files: int
    max_fields: int = MAX_FIELDS
    max_field_bytes: int = MAX_FIELD_BYTES

    @classmethod
    def of(cls, gw: Gateway, *, max_files: int) -> Limits:
        return cls(gw.settings.max_upload_bytes, gw.settings.max_request_bytes, max_files)


class _Collector:
    """The parser's callbacks: assemble parts and count their bytes as they arrive."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.form = Form()
        self.ended = False
        self._headers: dict[str, str] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._data = bytearray()
        self._name = ""
        self._filename: str | None = None
        self._is_file = False

    def on_part_begin(self) -> None:
        self._headers, self._data = {}, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        name = self._header_name.decode("latin-1").strip().lower()
        self._headers[name] = self._header_value.decode("latin-1").strip()
        self._header_name, self._header_value = bytearray(), bytearray()

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get("content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise ValidationError("Each multipart part needs a Content-Disposition: form-data; name=...")
        self._name = options[b"name"].decode("utf-8", "replace")
        raw_filename = options.get(b"filename")
        self._filename = raw_filename.decode("utf-8", "replace") if raw_filename is not None else None
        self._is_file = raw_filename is not None
        if self._is_file and len(self.form.files) >= self.limits.max_files:
            raise ValidationError(f"At most {self.limits.max_files} files per request.", param=self._name)
        if not self._is_file and len(self.form.fields) >= self.limits.max_fields:
            raise ValidationError(f"At most {self.limits.max_fields} form fields per request.")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._data += data[start:end]
        if self._is_file and len(self._data) > self.limits.max_file_bytes:
            raise PayloadTooLargeError(
                f"{self._name} is larger than the limit of {self.limits.max_file_bytes} bytes.",
                param=self._name,
            )
        if not self._is_file and len(self._data) > self.limits.max_field_bytes:
            raise PayloadTooLargeError(
                f"{self._name} is larger than the limit of {self.limits.max_field_bytes} bytes.",
                param=self._name,
            )

    def on_part_end(self) -> None:
        if self._is_file:
            content_type = self._headers.get("content-type")
            self.form.files.append(FilePart(self._name, self._filename, content_type, bytes(self._data)))
        else:
            try:
                value = self._data.decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationError(f"{self._name} is not UTF-8 text.", param=self._name) from None
            self.form.fields.append((self._name, value))
        self._data = bytearray()

    def on_end(self) -> None:
        self.ended = True

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_end": self.on_end,
        }


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"The request body is larger than {limit} bytes.")


def _closing(exc: GatewayError) -> GatewayError:
    # Refused mid-body: the rest is never read, so the connection cannot carry another request.
    # Closing it also stops the client's upload instead of letting uvicorn read and discard it.
    exc.headers.setdefault("Connection", "close")
    return exc


async def read_form(request: Request, limits: Limits) -> Form:
    """The multipart body of ``request``, parsed incrementally within ``limits``."""
    content_type, options = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise ValidationError("Send the body as multipart/form-data with a boundary.")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_total_bytes:
        raise _closing(_too_large(limits.max_total_bytes))  # before reading a byte of it
    collector = _Collector(limits)
    try:
        parser = MultipartParser(options[b"boundary"], collector.callbacks())
    except FormParserError:
        raise ValidationError("The multipart boundary is not valid.") from None
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limits.max_total_bytes:
                raise _too_large(limits.max_total_bytes)
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise _closing(ValidationError(f"The multipart body is malformed ({exc}).")) from None
    except GatewayError as exc:
        raise _closing(exc) from None
    if not collector.ended:
        raise ValidationError("The multipart body ended before its closing boundary.")
    return collector.form
