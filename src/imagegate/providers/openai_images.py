"""The ``openai`` kind: OpenAI's Images API (or any compatible upstream) through the official SDK.

One ``AsyncOpenAI`` client per provider, so connections are reused across tasks. The SDK's own
retries are off: :mod:`imagegate.retry` decides, the same way for every provider. A plain
generate (no stream) skips the SDK's request layers (:mod:`openai_plain`); its errors are
mapped by the same function as the SDK's. Output bytes are decoded from base64 once and handed on as they are (never re-encoded).
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import openai
import orjson
import pybase64

from imagegate.providers.base import (
    CONTENT_TYPES,
    Action,
    FinalImage,
    GeneratedImage,
    ImageRequest,
    PartialImage,
    Progress,
    ProviderError,
    ProviderEvent,
    Retrying,
    Usage,
)
from imagegate.providers.config import ProviderConfig
from imagegate.providers.openai_plain import PlainGenerate
from imagegate.providers.registry import register_kind
from imagegate.retry import is_retryable_status, parse_retry_after

log = logging.getLogger("imagegate.providers")

# The SDK's aiohttp transport (``openai[aiohttp]``): aiohttp's C parser takes a 2 MB answer for
# ~1 ms less CPU than httpcore and h11 (measured beside it on the bench's loopback upstream).
# It hands the body on 16 KB at a time, a round of Python each (128 per image); a read returns
# what has arrived and never waits for more, so larger reads only help. Process-wide.
# A vendored module of the SDK: where a later release moves it, the SDK's own size stays.
_READ_BYTES = 1024 * 1024
with contextlib.suppress(ImportError, AttributeError):
    from openai._vendor.httpx_aiohttp.transport import AiohttpResponseStream

    if AiohttpResponseStream.CHUNK_SIZE < _READ_BYTES:
        AiohttpResponseStream.CHUNK_SIZE = _READ_BYTES

# OpenAI's codes for a prompt or image its safety system refused.
_POLICY_CODES = frozenset({"moderation_blocked", "content_policy_violation", "content_filter"})
# Task parameters passed through only when the task carries them, and only where OpenAI takes them.
_GENERATE_EXTRAS = ("moderation",)
_EDIT_EXTRAS = ("input_fidelity",)


def _upstream_message(body: object, fallback: str) -> str:
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        return str(body["message"])
    return fallback


def _refused(exc: BaseException) -> bool:
    """A refused or unresolvable connection, which the aiohttp transport reports as a connect
    timeout (its exception map prefers the timeout): the aiohttp error behind it says which."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectorError):
            return True
        cause = cause.__cause__
    return False


def _timed_out() -> ProviderError:
    return ProviderError("the upstream did not answer in time", code="timeout", retryable=True)


def _unreachable() -> ProviderError:
    return ProviderError("could not reach the upstream", code="upstream_error", retryable=True)


def map_error(
    exc: openai.OpenAIError, provider: str, key_env: str | None
) -> tuple[ProviderError, float | None]:
    """The one place OpenAI's errors become ours; also the wait the upstream asked for, if any.
    The plain generate (no SDK) maps its error answers with ``map_status``, as this does."""
    if isinstance(exc, openai.APITimeoutError) and not _refused(exc):
        return _timed_out(), None
    if isinstance(exc, openai.APIConnectionError):
        return _unreachable(), None
    if not isinstance(exc, openai.APIError):
        return ProviderError("the upstream answered something unreadable", retryable=True), None
    if isinstance(exc, openai.APIStatusError):
        return map_status(exc.status_code, exc.body, exc.response.headers, provider, key_env)
    message = _upstream_message(exc.body, "the upstream failed")  # an error event inside a stream
    if exc.code in _POLICY_CODES:
        return ProviderError(message, code="content_policy"), None
    return ProviderError(message, code="upstream_error", retryable=True), None


def map_status(
    status: int, body: object, headers: Mapping[str, str], provider: str, key_env: str | None
) -> tuple[ProviderError, float | None]:
    """An error answer: its status, its ``error`` object (as the SDK reads it) and headers."""
    code = body.get("code") if isinstance(body, Mapping) else None
    message = _upstream_message(body, "the upstream failed")
    if code in _POLICY_CODES:
        return ProviderError(message, code="content_policy"), None
    if status in (401, 403):
        # The upstream's own message may echo part of the key: it goes to neither log nor task.
        log.error("provider %s: upstream refused the key in $%s (HTTP %d)", provider, key_env, status)
        return ProviderError(
            f"the upstream refused this gateway's credentials (HTTP {status})", code="upstream_auth"
        ), None
    if status == 429:
        return ProviderError(message, code="rate_limit", retryable=True), parse_retry_after(headers)
    if is_retryable_status(status):
        return ProviderError(message, code="upstream_error", retryable=True), parse_retry_after(headers)
    return ProviderError(message, code="validation"), None


def _error_object(content: bytes) -> object:
    """An error answer's ``error`` object, read as the SDK reads it (the whole body without one)."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content.decode(errors="replace")
    return body.get("error", body) if isinstance(body, Mapping) else body


class _Mapped(Exception):
    """A plain generate's failure, already mapped (with the wait the upstream asked for)."""

    def __init__(self, error: ProviderError, retry_after: float | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


def _decode(b64: object) -> bytes:
    if not isinstance(b64, str | bytes | memoryview) or not b64:
        raise ProviderError("the upstream answered without image data", retryable=True)
    try:
        return pybase64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderError("the upstream answered undecodable image data", retryable=True) from None


def _usage(raw: Any) -> Usage | None:
    """Usage from the SDK's model (a streamed event) or from a plain answer's JSON."""
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        inputs, outputs = raw.get("input_tokens_details"), raw.get("output_tokens_details")
        inputs = inputs if isinstance(inputs, Mapping) else {}
        outputs = outputs if isinstance(outputs, Mapping) else {}
        return Usage(
            input_text_tokens=int(inputs.get("text_tokens") or 0),
            input_image_tokens=int(inputs.get("image_tokens") or 0),
            output_image_tokens=int(outputs.get("image_tokens") or raw.get("output_tokens") or 0),
        )
    inputs = getattr(raw, "input_tokens_details", None)
    outputs = getattr(raw, "output_tokens_details", None)
    return Usage(
        input_text_tokens=int(getattr(inputs, "text_tokens", 0) or 0),
        input_image_tokens=int(getattr(inputs, "image_tokens", 0) or 0),
        output_image_tokens=int(getattr(outputs, "image_tokens", 0) or getattr(raw, "output_tokens", 0) or 0),
    )


_B64_KEY = b'"b64_json"'


def _cut_images(content: bytes) -> tuple[Any, list[memoryview]]:
    """The answer's JSON, parsed with each ``b64_json`` string cut out (left empty), and the strings.

    orjson would spend ~3 ms building a 2 MB string; finding it with ``bytes.find`` costs ~0.1 ms,
    and views of the answer's bytes go on to the base64 decoder and the OpenAI face without a copy
    (each 2 MB copy costs ~0.5 ms, mostly in page faults).
    Anything unusual (an escape inside the string, a key elsewhere than in ``data``) takes a full parse.
    """
    strings: list[memoryview] = []
    view = memoryview(content)
    pieces: list[bytes] = []
    pos = 0
    while (key := content.find(_B64_KEY, pos)) != -1:
        start = content.find(b'"', key + len(_B64_KEY))
        end = content.find(b'"', start + 1)
        colon = content[key + len(_B64_KEY) : start] if 0 < start - key < 64 else b""
        if key == 0 or content[key - 1] == 0x5C or colon.strip() != b":" or end == -1:
            return orjson.loads(content), []
        if content.find(b"\\", start, end) != -1:  # an escaped character: let the parser read it
            return orjson.loads(content), []
        pieces.append(content[pos : start + 1])
        strings.append(view[start + 1 : end])  # no copy: decoded and relayed from the answer itself
        pos = end
    pieces.append(content[pos:])
    body = orjson.loads(b"".join(pieces))
    data = body.get("data") if isinstance(body, dict) else None
    cut = [item.get("b64_json") for item in data if isinstance(item, dict)] if isinstance(data, list) else []
    if cut != [""] * len(strings):  # a cut that was not a data item's field: read it all
        return orjson.loads(content), []
    return body, strings


class OpenAIProvider:
    placeholder = False

    def __init__(self, config: ProviderConfig) -> None:
        key = config.required_api_key()
        self.name = config.name
        self._key_env = config.api_key_env
        self._policy = config.retry_policy()
        # base_url None: the SDK reads OPENAI_BASE_URL, then uses api.openai.com.
        self._client = openai.AsyncOpenAI(
            api_key=key,
            base_url=config.base_url,
            timeout=config.timeout_s,
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(timeout=config.timeout_s),
        )
        self._plain = PlainGenerate(self._client, config.timeout_s)
        self.label = f"OpenAI Images API at {self._client.base_url}"

    def _params(self, request: ImageRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": request.model,
            "prompt": request.prompt,
            "size": f"{request.width}x{request.height}",
            "quality": request.quality,
            "background": request.background,
            "output_format": request.output_format,
            "n": request.n,
        }
        if request.output_format != "png":  # OpenAI takes a compression for jpeg and webp only
            params["output_compression"] = request.output_compression
        extras = _EDIT_EXTRAS if request.action is Action.EDIT else _GENERATE_EXTRAS
        params.update({k: request.extra[k] for k in extras if request.extra.get(k) is not None})
        if request.partial_images > 0:
            params.update(stream=True, partial_images=request.partial_images)
        if request.action is Action.EDIT:
            params["image"] = [
                (f"image-{i}.{s.content_type.rpartition('/')[2]}", s.data, s.content_type)
                for i, s in enumerate(request.sources)
            ]
            if request.mask is not None:
                params["mask"] = ("mask.png", request.mask.data, request.mask.content_type)
        return params

    def _image(self, request: ImageRequest, b64: object) -> GeneratedImage:
        data = _decode(b64)  # validated, so the string itself can be relayed as it is
        return GeneratedImage(
            data,
            CONTENT_TYPES[request.output_format],
            request.width,
            request.height,
            b64=b64 if isinstance(b64, bytes | memoryview) else str(b64),
        )

    async def _plain_generate(self, params: dict[str, Any]) -> bytes:
        """``images.generate``'s request, sent by :mod:`openai_plain`; its failures mapped here."""
        try:
            status, headers, content = await self._plain.post(params)
        except TimeoutError:  # aiohttp's read and connect timeouts are TimeoutErrors too
            raise _Mapped(_timed_out(), None) from None
        except (aiohttp.ClientError, OSError):
            raise _Mapped(_unreachable(), None) from None
        if not 200 <= status < 300:
            raise _Mapped(*map_status(status, _error_object(content), headers, self.name, self._key_env))
        return content

    async def _call(self, request: ImageRequest) -> AsyncIterator[ProviderEvent]:
        images = self._client.images
        params = self._params(request)
        if not params.get("stream"):
            # The SDK sends the call and maps its errors; the megabytes of the answer are parsed
            # by orjson straight from the bytes, without the SDK's json + pydantic models.
            if request.action is Action.EDIT:
                content = (await images.with_raw_response.edit(**params)).content
            else:
                content = await self._plain_generate(params)
            body, strings = _cut_images(content)
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list) or len(data) != request.n:
                raise ProviderError("the upstream answered without the images asked for", retryable=True)
            for index, item in enumerate(data):
                b64 = strings[index] if strings else item.get("b64_json") if isinstance(item, dict) else None
                yield FinalImage(index, self._image(request, b64))
            if (usage := _usage(body.get("usage"))) is not None:
                yield usage
            return
        call = images.edit if request.action is Action.EDIT else images.generate
        done = 0
        usage = Usage()
        async for event in await call(**params):
            kind = getattr(event, "type", "")
            if kind.endswith(".partial_image"):
                image = self._image(request, event.b64_json)
                yield PartialImage(min(done, request.n - 1), int(event.partial_image_index), image)
            elif kind.endswith(".completed"):
                yield FinalImage(done, self._image(request, event.b64_json))
                done += 1
                part = _usage(getattr(event, "usage", None)) or Usage()
                usage = Usage(
                    *(a + b for a, b in zip(vars(usage).values(), vars(part).values(), strict=True))
                )
        yield usage

    async def run(self, request: ImageRequest) -> AsyncIterator[ProviderEvent]:
        yield Progress(0.0, f"sent to {self.name}")
        retries = 0
        while True:
            try:
                async for event in self._call(request):
                    yield event
                return
            except openai.OpenAIError as exc:
                error, retry_after = map_error(exc, self.name, self._key_env)
            except _Mapped as exc:
                error, retry_after = exc.error, exc.retry_after
            except ProviderError as exc:
                error, retry_after = exc, None
            except ValueError:  # a body that is not JSON, or JSON that is not the API's
                error = ProviderError("the upstream answered something unreadable", retryable=True)
                retry_after = None
            if not error.retryable or not self._policy.should_retry(retries):
                raise error
            wait = self._policy.delay(retries, retry_after)
            yield Retrying(error.code)
            log.info("provider %s: %s, retrying in %.2f s", self.name, error.code, wait)
            await asyncio.sleep(wait)
            retries += 1

    async def aclose(self) -> None:
        await self._plain.aclose()
        await self._client.close()


@register_kind("openai")
def _from_config(config: ProviderConfig) -> OpenAIProvider:
    return OpenAIProvider(config)


__all__ = ["OpenAIProvider", "map_error", "map_status"]
