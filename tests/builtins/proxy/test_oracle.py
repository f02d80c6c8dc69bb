"""The proxy's response parser against h11 (a maintained HTTP/1.1 state machine) as the
oracle: random valid and invalid answers, cut into random pieces, must give both the same
status, headers, body, and the same verdict on the framing (error, or bytes after the end)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framex.builtins.proxy.parser import ResponseParser, UpstreamClosedError, UpstreamProtocolError

MAX_HEAD = 4096


@dataclass(frozen=True)
class Outcome:
    """What a parser made of a byte stream."""

    error: bool
    status: int = 0
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    trailing: bool = False
    length: bytes | None = None
    """The Content-Length (its header lines are not in ``headers``: h11 folds repeated ones into one)."""


def _split(headers: tuple[tuple[bytes, bytes], ...]) -> tuple[tuple[tuple[bytes, bytes], ...], bytes | None]:
    lowered = tuple((name.lower(), value) for name, value in headers)
    lengths = {value.split(b",")[0].strip() for name, value in lowered if name == b"content-length"}
    return tuple(h for h in lowered if h[0] != b"content-length"), (lengths.pop() if lengths else None)


def ours(method: str, pieces: list[bytes]) -> Outcome:
    parser = ResponseParser(method, MAX_HEAD)
    try:
        for piece in pieces:
            parser.feed(piece)
        if not parser.complete:
            parser.feed_eof()
    except (UpstreamProtocolError, UpstreamClosedError):
        return Outcome(error=True)
    headers, length = _split(tuple(parser.headers))
    assert length is None or int(length) == parser.content_length
    return Outcome(False, parser.status, headers, b"".join(parser.body), parser.trailing, length)


def oracle(method: str, pieces: list[bytes]) -> Outcome:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    conn.send(h11.Request(method=method, target="/", headers=[("host", "upstream")]))
    conn.send(h11.EndOfMessage())
    status, headers, body, complete, after = 0, (), b"", False, False
    fed = 0
    for piece in [*pieces, b""]:  # b"": the upstream closed the connection
        conn.receive_data(piece)
        fed += 1
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                if not complete:
                    return Outcome(error=True)
                after = True  # "Got data when expecting EOF": after an answer that ends the connection
                break
            if event in (h11.NEED_DATA, h11.PAUSED) or isinstance(event, h11.ConnectionClosed):
                break
            if isinstance(event, h11.Response):
                status, headers = event.status_code, tuple(event.headers.raw_items())
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                complete = True
        if complete:
            break
    if not complete:
        return Outcome(error=True)
    # h11 stops reading once the answer is complete: what it holds or was not fed yet came after.
    trailing = after or bool(conn.trailing_data[0]) or any(pieces[fed:])
    return Outcome(False, status, *_split(headers)[:1], body, trailing, _split(headers)[1])


token = st.text("abcdefghijklmnopqrstuvwxyz0123456789-!#$%&'*+.^_`|~", min_size=1, max_size=12).map(str.encode)
field_value = st.binary(min_size=0, max_size=24).map(
    lambda raw: bytes(b if 0x21 <= b <= 0x7E or b >= 0x80 else 0x61 for b in raw)
) | st.sampled_from([b"a b", b"x\tY", b""])
plain_headers = st.lists(
    st.tuples(token, field_value).filter(
        lambda h: h[0].lower() not in (b"content-length", b"transfer-encoding", b"connection")
    ),
    max_size=4,
)

BROKEN_FIELDS = [b"bad name: x", b"no-colon", b"x: a\rb", b": empty-name", b"x: \x00", b"x : space-before-colon"]
BROKEN_STATUS = [b"HTTP/1.1 2000 OK", b"HTTP/1.1 20 OK", b"HTTP/1.1\t200 OK", b"HTTP/1.1 200 O\x00K", b"HTTP 200", b""]


@st.composite
def answers(draw: st.DrawFn) -> tuple[str, bytes, bool]:
    """(method, bytes of an answer, whether our parser is stricter than h11 on it)."""
    method = draw(st.sampled_from(["GET", "GET", "HEAD"]))
    status = draw(st.sampled_from([200, 200, 201, 204, 304, 404, 500]))
    body = draw(st.binary(max_size=40))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    fault = draw(
        st.sampled_from(
            [None] * 8
            + [
                "interim",
                "switching",
                "short",
                "long",
                "two-lengths",
                "same-length-twice",
                "negative-length",
                "bad-chunk-size",
                "chunk-no-crlf",
                "chunk-extension",
                "trailers",
                "bad-trailer",
                "gzip",
                "length-and-chunked",
                "bad-field",
                "bad-status",
                "http10",
                "huge-head",
                "extra",
            ]
        )
    )
    stricter = False
    head = [
        b"HTTP/1.%d %d %s"
        % (0 if fault == "http10" else 1, status, draw(st.sampled_from([b"OK", b"", b"Fine Thanks"])))
    ]
    if fault == "bad-status":
        head[0] = draw(st.sampled_from(BROKEN_STATUS))
    fields = [name + b": " + value for name, value in draw(plain_headers)]
    if fault == "bad-field":
        fields.insert(draw(st.integers(0, len(fields))), draw(st.sampled_from(BROKEN_FIELDS)))
    if fault == "huge-head":
        fields.append(b"x-big: " + b"a" * MAX_HEAD)
        stricter = True  # h11 caps a head only while it is incomplete; the client caps it whole
    payload = body
    if framing == "length":
        length = len(body) + (3 if fault == "short" else 0)
        fields.append(b"content-length: %d" % length)
        if fault == "two-lengths":
            fields.append(b"content-length: %d" % (length + 1))
        if fault == "same-length-twice":
            fields.append(b"content-length: %d" % length)
        if fault == "negative-length":
            fields[-1] = b"content-length: -%d" % length
        if fault == "long":
            payload = body + b"zz"  # two bytes past the length: trailing
    elif framing == "chunked":
        fields.append(b"transfer-encoding: " + (b"gzip" if fault == "gzip" else b"chunked"))
        if fault == "length-and-chunked":
            fields.append(b"content-length: %d" % len(body))
            stricter = True  # h11 lets chunked win; a proxy refuses such an answer (RFC 9112 6.1)
        cut = draw(st.integers(0, len(body)))
        chunks = [part for part in (body[:cut], body[cut:]) if part]
        payload = b""
        for index, chunk in enumerate(chunks):
            size = b"%x" % len(chunk)
            if fault == "bad-chunk-size" and index == 0:
                size = b"zz"
            if fault == "chunk-extension":
                size += b";name=value;flag"
            payload += size + b"\r\n" + chunk + (b"xx" if fault == "chunk-no-crlf" else b"\r\n")
        payload += b"0\r\n"
        if fault == "trailers":
            payload += b"x-checksum: abc\r\nx-more: 1\r\n"
        if fault == "bad-trailer":
            payload += b"bad trailer\r\n"
        payload += b"\r\n"
    if fault == "extra":
        payload += b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecond"
    interim = b""
    if fault == "interim":
        interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </s.css>\r\n\r\n"
    if fault == "switching":
        interim = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n"
    data = interim + b"\r\n".join([*head, *fields]) + b"\r\n\r\n" + payload
    return method, data, stricter


@st.composite
def cut(draw: st.DrawFn, data: bytes) -> list[bytes]:
    points = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    bounds = [0, *points, len(data)]
    # A connection never delivers empty data (to h11, b"" is the end of the stream).
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def check(method: str, data: bytes, pieces: list[bytes], stricter: bool) -> None:
    assert b"".join(pieces) == data
    mine = ours(method, pieces)
    theirs = oracle(method, pieces)
    if stricter:
        assert mine.error, f"accepted what a proxy must refuse: {data!r}"
        return
    assert mine == theirs, f"{data[:300]!r} in {[len(p) for p in pieces]} pieces"


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_parser_agrees_with_h11(data: st.DataObject) -> None:
    method, answer, stricter = data.draw(answers())
    pieces = data.draw(cut(answer))
    check(method, answer, pieces, stricter)


def test_every_split_of_an_answer_with_interim_chunks_and_trailers_gives_the_same_result() -> None:
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-a: 1\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n"
    )
    whole = ours("GET", [answer])
    assert whole == Outcome(False, 200, ((b"transfer-encoding", b"chunked"), (b"x-a", b"1")), b"hello world", False)
    for at in range(len(answer) + 1):
        pieces = [piece for piece in (answer[:at], answer[at:]) if piece]
        assert ours("GET", pieces) == whole == oracle("GET", pieces), at
