"""The outbound guard: private addresses refused before connecting, every resolved address
judged, redirects re-checked, size and time capped; GET for source images, POST for webhooks."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from imagegate.errors import PayloadTooLargeError, ValidationError
from imagegate.storage import guard
from imagegate.storage.guard import MAX_REDIRECTS, POST_BODY_CAP, GuardError, Policy
from tests.conftest import ImageHost, png_bytes

MiB = 1024 * 1024
CLOSED = Policy(timeout_s=5, max_bytes=MiB)
LOOPBACK = Policy.from_hosts(["127.0.0.1"], timeout_s=5, max_bytes=MiB)


def answers(table: dict[str, list[str]]) -> guard.Resolver:
    """A resolver that knows only ``table`` (keeps tests off the real DNS)."""

    async def resolve(host: str, port: int) -> list[str]:
        return table.get(host, [])

    return resolve


async def send(method: str, url: str, policy: Policy) -> guard.Response:
    if method == "GET":
        return await guard.get(url, policy, param="p")
    return await guard.post(url, b"{}", {}, policy, param="p")


def with_resolver(policy: Policy, table: dict[str, list[str]]) -> Policy:
    return Policy(
        allow=policy.allow, timeout_s=policy.timeout_s, max_bytes=policy.max_bytes, resolver=answers(table)
    )


# ------------------------------------------------------------------ a host that records requests


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    port: int
    routes: dict[str, tuple[int, dict[str, str], bytes]]
    seen: list[Seen] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def hits(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


class _RecordingHandler(BaseHTTPRequestHandler):
    recorder: Recorder

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.recorder.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
        status, headers, reply = self.recorder.routes.get(self.path, (200, {}, b"ok"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHandler)
    state = Recorder(port=server.server_address[1], routes={})
    _RecordingHandler.recorder = state
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


# ------------------------------------------------------------------ refused before connecting


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.0.0.1:8080/image.png",
        "http://127.1.2.3/",
        "http://localhost/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "https://user:pass@10.0.0.1/",
        # IPv6 forms that carry an IPv4 address, judged by it
        "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
        "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
        "http://[2002:c0a8:101::1]/",  # 6to4 of 192.168.1.1
        # forms refused whatever they carry
        "http://[::10.0.0.1]/",  # IPv4-compatible
        "http://[::8.8.8.8]/",
        "http://[64:ff9b:1::808:808]/",  # local-use NAT64
        "http://[2001::1]/",  # Teredo
        "http://[fec0::1]/",  # site-local
        # legacy IPv4 spellings a resolver would accept
        "http://0x7f.1/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://10.1/",
    ],
)
async def test_private_and_reserved_addresses_are_refused(url: str) -> None:
    with pytest.raises(GuardError) as info:
        await guard.get(url, CLOSED, param="source_image_urls[0]")
    # refused by the address check (a connection attempt would end in "fetch failed")
    assert "private or reserved address" in info.value.message
    assert info.value.param == "source_image_urls[0]"
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1/",
        "http://[::1]x/",
        "http://[v1.fe]/",
        "http://[fe80::1%25eth0]/",
        "http://example.com:99999/",
        "http://example.com:65536/",
        "http://example.com:0/",
        "http://example.com:abc/",
        "http://example.com:/",
        "http:///nohost",
        "http://user@/x",
        "http://exa mple.com/",
        "http://a..b/",
        "http://bad\x00host/",
        "ftp://example.com/a.png",
        "file:///etc/passwd",
        "gopher://127.0.0.1/",
        "example.com/a.png",
        "",
    ],
)
async def test_unparsable_urls_are_a_400_naming_the_param(url: str) -> None:
    for method in ("GET", "POST"):
        with pytest.raises(ValidationError) as info:
            await send(method, url, LOOPBACK)
        assert info.value.status_code == 400
        assert info.value.param == "p"
        assert info.value.message.startswith("p: ")


async def test_guard_error_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        await guard.get("http://10.0.0.1/", CLOSED)


# ------------------------------------------------------------------ the allow-list


async def test_allow_list_lets_the_image_host_through(image_host: ImageHost) -> None:
    data = png_bytes(10, 10)
    url = image_host.serve(f"/{uuid.uuid4().hex}.png", data)
    response = await guard.get(url, LOOPBACK)
    assert response.content == data
    assert response.content_type == "image/png"
    with pytest.raises(GuardError, match="private or reserved"):
        await guard.get(url, CLOSED)  # the same URL without the allow-list


async def test_allow_entry_with_a_port_admits_that_port_only(image_host: ImageHost) -> None:
    url = image_host.serve(f"/{uuid.uuid4().hex}.png", png_bytes(4, 4))
    port = int(image_host.base_url.rsplit(":", 1)[1])
    exact = Policy.from_hosts([f"127.0.0.1:{port}"], timeout_s=5, max_bytes=MiB)
    other = Policy.from_hosts(
        [f"127.0.0.1:{port + 1 if port < 65535 else port - 1}"], timeout_s=5, max_bytes=MiB
    )
    assert (await guard.get(url, exact)).status_code == 200
    with pytest.raises(GuardError, match="private or reserved"):
        await guard.get(url, other)


async def test_an_allowed_name_admits_all_its_addresses(recorder: Recorder) -> None:
    policy = with_resolver(
        Policy.from_hosts(["images.test"], timeout_s=5, max_bytes=MiB),
        {"images.test": ["127.0.0.1", "10.0.0.1"]},
    )
    response = await guard.get(recorder.url("/named.png", host="images.test"), policy)
    assert response.status_code == 200


# ------------------------------------------------------------------ a name with several addresses


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1", "10.0.0.1"],
        ["10.0.0.1", "127.0.0.1"],
        ["127.0.0.1", "::1"],  # localhost on a dual-stack host, only 127.0.0.1 allowed
        ["::1", "127.0.0.1"],
        ["93.184.216.34", "169.254.169.254"],  # public first: still refused, nothing is connected
    ],
)
async def test_one_refused_address_refuses_the_name(recorder: Recorder, addresses: list[str]) -> None:
    policy = with_resolver(LOOPBACK, {"images.test": addresses})
    path = f"/{uuid.uuid4().hex}.png"
    for method in ("GET", "POST"):
        with pytest.raises(GuardError) as info:
            await send(method, recorder.url(path, host="images.test"), policy)
        assert info.value.message == "p: images.test resolves to a private or reserved address"
    assert recorder.hits(path) == []


async def test_connection_goes_to_the_checked_address_with_the_name_kept(recorder: Recorder) -> None:
    policy = with_resolver(LOOPBACK, {"images.test": ["127.0.0.1"]})
    path = f"/{uuid.uuid4().hex}.png"
    recorder.routes[path] = (200, {"Content-Type": "image/png"}, b"png!")
    response = await guard.get(recorder.url(path, host="images.test"), policy)
    assert response.content == b"png!"
    assert response.url == f"http://images.test:{recorder.port}{path}"
    (seen,) = recorder.hits(path)
    assert seen.headers["Host"] == f"images.test:{recorder.port}"


async def test_next_checked_address_is_tried_when_one_refuses_connections(recorder: Recorder) -> None:
    # 127.0.0.2 is loopback too, but nothing listens on this port there
    policy = with_resolver(
        Policy.from_hosts(["127.0.0.1", "127.0.0.2"], timeout_s=5, max_bytes=MiB),
        {"images.test": ["127.0.0.2", "127.0.0.1"]},
    )
    path = f"/{uuid.uuid4().hex}.png"
    assert (await guard.get(recorder.url(path, host="images.test"), policy)).status_code == 200
    assert len(recorder.hits(path)) == 1


async def test_a_name_that_does_not_resolve() -> None:
    with pytest.raises(GuardError) as info:
        await guard.get("http://nowhere.test/a.png", with_resolver(CLOSED, {}), param="p")
    assert info.value.message == "p: cannot resolve host 'nowhere.test'"


# ------------------------------------------------------------------ GET: size, redirects, answers


async def test_body_over_the_limit(image_host: ImageHost) -> None:
    url = image_host.serve(f"/{uuid.uuid4().hex}.bin", b"x" * 5000, "application/octet-stream")
    with pytest.raises(PayloadTooLargeError) as info:
        await guard.get(url, Policy.from_hosts(["127.0.0.1"], timeout_s=5, max_bytes=4999), param="p")
    assert info.value.status_code == 413
    assert info.value.param == "p"
    response = await guard.get(url, Policy.from_hosts(["127.0.0.1"], timeout_s=5, max_bytes=5000))
    assert len(response.content) == 5000


def redirect_chain(image_host: ImageHost, hops: int) -> tuple[str, bytes]:
    """A URL that redirects ``hops`` times (relative and absolute Locations) before the image."""
    data = png_bytes(6, 6)
    name = uuid.uuid4().hex
    target = image_host.serve(f"/{name}-final.png", data)
    for hop in range(hops, 0, -1):
        location = target if hop % 2 else target.removeprefix(image_host.base_url)
        target = image_host.redirect(f"/{name}-hop{hop}", location)
    return target, data


async def test_redirects_up_to_the_limit_are_followed(image_host: ImageHost) -> None:
    url, data = redirect_chain(image_host, MAX_REDIRECTS)
    assert MAX_REDIRECTS == 3
    response = await guard.get(url, LOOPBACK)
    assert response.content == data
    assert response.url.endswith("-final.png")


async def test_too_many_redirects(image_host: ImageHost) -> None:
    url, _ = redirect_chain(image_host, MAX_REDIRECTS + 1)
    with pytest.raises(GuardError) as info:
        await guard.get(url, LOOPBACK, param="p")
    assert info.value.message == f"p: more than {MAX_REDIRECTS} redirects"


async def test_redirect_loop_ends(image_host: ImageHost) -> None:
    name = uuid.uuid4().hex
    image_host.redirect(f"/{name}-a", f"/{name}-b")
    url = image_host.redirect(f"/{name}-b", f"/{name}-a")
    with pytest.raises(GuardError, match="redirects"):
        await guard.get(url, LOOPBACK)


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[64:ff9b::a00:1]/",
        "http://0xa000001/",  # 10.0.0.1
    ],
)
async def test_each_redirect_hop_is_checked(image_host: ImageHost, target: str) -> None:
    url = image_host.redirect(f"/{uuid.uuid4().hex}", target)
    with pytest.raises(GuardError) as info:
        await guard.get(url, LOOPBACK, param="p")
    assert "private or reserved address" in info.value.message


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("file:///etc/passwd", "redirect not followed: only http(s) URLs are accepted, not file:"),
        ("gopher://127.0.0.1:70/_x", "redirect not followed: only http(s) URLs are accepted, not gopher:"),
        ("ftp://example.com/a.png", "redirect not followed: only http(s) URLs are accepted, not ftp:"),
        ("http://[::1", "the server redirected to an unparsable Location"),
        ("http://example.com:99999/", "redirect not followed: the port must be a number from 1 to 65535"),
        ("http://:80/", "redirect not followed: the URL has no host"),
    ],
)
async def test_redirects_to_what_we_do_not_fetch(image_host: ImageHost, location: str, reason: str) -> None:
    url = image_host.redirect(f"/{uuid.uuid4().hex}", location)
    with pytest.raises(GuardError) as info:
        await guard.get(url, LOOPBACK, param="p")
    assert info.value.message == f"p: {reason}"
    assert info.value.status_code == 400


async def test_non_200_answer_names_the_status(image_host: ImageHost) -> None:
    url = image_host.serve(f"/{uuid.uuid4().hex}", b"gone", "text/plain", status=404)
    with pytest.raises(GuardError) as info:
        await guard.get(url, LOOPBACK, param="p")
    assert "404" in info.value.message


async def test_a_host_that_never_answers_hits_the_time_limit(silent_port: int) -> None:
    policy = Policy.from_hosts(["127.0.0.1"], timeout_s=0.2, max_bytes=1024)
    for method in ("GET", "POST"):
        with pytest.raises(GuardError) as info:
            await send(method, f"http://127.0.0.1:{silent_port}/a", policy)
        assert info.value.message == "p: no complete answer within 0.2 s"


async def test_connection_refused_is_a_clean_error() -> None:
    # a loopback port nothing listens on (allow-listed, so the connection is actually tried)
    with pytest.raises(GuardError) as info:
        await guard.get("http://127.0.0.1:1/", LOOPBACK, param="p")
    assert info.value.message == "p: fetch failed (ConnectError)"


# ------------------------------------------------------------------ POST, for webhooks


async def test_post_delivers_body_and_headers_and_returns_the_answer(recorder: Recorder) -> None:
    path = f"/hook-{uuid.uuid4().hex}"
    recorder.routes[path] = (202, {"Content-Type": "text/plain"}, b"thanks")
    policy = with_resolver(LOOPBACK, {"hooks.test": ["127.0.0.1"]})
    response = await guard.post(
        recorder.url(path, host="hooks.test"),
        b'{"id": "t1"}',
        {"Content-Type": "application/json", "Host": "evil.test", "X-Signature": "abc"},
        policy,
    )
    assert (response.status_code, response.content, response.truncated) == (202, b"thanks", False)
    (seen,) = recorder.hits(path)
    assert seen.method == "POST"
    assert seen.body == b'{"id": "t1"}'
    assert seen.headers["Host"] == f"hooks.test:{recorder.port}"  # the caller cannot move it
    assert seen.headers["X-Signature"] == "abc"


async def test_post_does_not_follow_redirects(recorder: Recorder) -> None:
    path, elsewhere = f"/hook-{uuid.uuid4().hex}", f"/elsewhere-{uuid.uuid4().hex}"
    recorder.routes[path] = (307, {"Location": elsewhere}, b"")
    response = await guard.post(recorder.url(path), b"{}", {}, LOOPBACK)
    assert response.status_code == 307
    assert response.headers["location"] == elsewhere
    assert recorder.hits(elsewhere) == []


async def test_post_reads_only_a_small_answer(recorder: Recorder) -> None:
    path = f"/hook-{uuid.uuid4().hex}"
    recorder.routes[path] = (200, {}, b"y" * (POST_BODY_CAP * 3))
    response = await guard.post(recorder.url(path), b"{}", {}, LOOPBACK)
    assert response.status_code == 200
    assert response.truncated is True
    assert response.content == b"y" * POST_BODY_CAP


async def test_post_to_a_refused_address_never_connects(recorder: Recorder) -> None:
    path = f"/hook-{uuid.uuid4().hex}"
    with pytest.raises(GuardError, match="private or reserved address"):
        await guard.post(recorder.url(path), b"{}", {}, CLOSED, param="callback_url")
    assert recorder.hits(path) == []
