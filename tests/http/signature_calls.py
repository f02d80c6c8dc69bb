"""Hypothesis strategies: requests to each route of the `signatures` fixture plugin.

Each parameter gets values a client may really send, good and bad: numbers in every
spelling, empty values, repeated keys, values percent-encoded, `+`-encoded or left raw,
non-ASCII text; bodies with the right, wrong or no content type, in other encodings,
cut short, of the wrong JSON shape; duplicate headers and malformed cookies. The aim is
requests where two request parsers could disagree, not requests a handler accepts.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, quote_plus

from hypothesis import strategies as st

from tests.http.differential import Call

API = "/api/v1/sig"
S = st.SearchStrategy

TEXT = st.one_of(
    st.text(max_size=8),
    # Plain ASCII too: a query with nothing to percent-decode may take a parser's shortcut.
    st.text(alphabet="ab +-._~=&;", max_size=6),
)
INTS = st.one_of(
    st.integers(-300, 300).map(str),
    st.sampled_from(
        [
            "",
            "0",
            "-0",
            "+7",
            " 7",
            "7 ",
            "1.0",
            "1.5",
            "1e3",
            "0x10",
            "1_000",
            "٣",
            "\uff19",  # fullwidth nine
            "9" * 25,
            "abc",
            "true",
            "1,2",
        ]
    ),
    TEXT,
)
FLOATS = st.one_of(
    st.floats(allow_nan=False, width=32).map(repr),
    st.sampled_from(["0.5", "1", ".5", "5.", "-1e-7", "1e309", "inf", "-Infinity", "nan", "1,5", "1_0.5", "", "e"]),
)
BOOLS = st.sampled_from(["true", "false", "True", "FALSE", "1", "0", "yes", "no", "on", "off", "y", "n", "2", "", "t"])
DATETIMES = st.sampled_from(
    [
        "2024-02-29T12:30:00",
        "2024-02-29T12:30:00Z",
        "2024-02-29T12:30:00.123456+05:30",
        "2024-02-29 12:30",
        "2024-02-29",
        "2023-02-29T00:00:00",
        "1700000000",
        "1700000000.5",
        "2024-02-29T24:00:00",
        "20240229T123000",
        "now",
    ]
)
DATES = st.sampled_from(["2024-02-29", "2023-02-29", "2024-2-9", "1700000000", "2024-02-29T00:00:00", "x", ""])
_U = "6f1c1f4e-3b4a-4d8e-9a51-0e2a9c3b7d10"
UUIDS = st.one_of(
    st.uuids().map(str),
    st.sampled_from([_U, _U.upper(), _U.replace("-", ""), "{" + _U + "}", "urn:uuid:" + _U, _U[:-1], "x"]),
)
DECIMALS = st.sampled_from(["1", "1.10", "-0.00", "1e3", "1E-2", "NaN", "Infinity", "1,0", " 2", "abc", "1" + "0" * 30])
COLORS = st.sampled_from(["red", "green", "blue", "Red", "RED", "purple", "", " red"])
LEVELS = st.sampled_from(["1", "2", "3", "low", "1.0", "0"])

_CORRECT_METHOD_WEIGHT = 9


def methods(*allowed: str) -> S[str]:
    """Mostly a method the route serves; sometimes one it does not (405), or HEAD and OPTIONS."""
    wrong = [m for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS") if m not in allowed]
    return st.sampled_from(list(allowed) * _CORRECT_METHOD_WEIGHT + wrong)


def encode(text: str, how: str) -> str:
    if how == "percent":
        return quote(text, safe="")
    if how == "plus":
        return quote_plus(text, safe="")
    # As a careless client writes it: `+`, `%`, `&` and `=` go through untouched.
    return quote(text, safe="%+&=/:,;@!$'()*")


@st.composite
def pairs(draw: st.DrawFn, params: dict[str, S[str]], stray: tuple[str, ...] = ()) -> list[tuple[str, str | None]]:
    """Each parameter left out, given once (most often), several times, empty, or as a bare key
    (value None); sometimes a stray key too. In no particular order."""
    out: list[tuple[str, str | None]] = []
    for name, values in params.items():
        shape = draw(st.sampled_from(["once", "once", "once", "omit", "many", "empty", "bare"]))
        if shape == "once":
            out.append((name, draw(values)))
        elif shape == "many":
            out.extend((name, v) for v in draw(st.lists(values, min_size=2, max_size=4)))
        elif shape == "empty":
            out.append((name, ""))
        elif shape == "bare":
            out.append((name, None))
    if draw(st.integers(0, 3)) == 0:
        out.append((draw(st.sampled_from(("extra", *stray))), draw(TEXT)))
    return list(draw(st.permutations(out)))


@st.composite
def query(draw: st.DrawFn, params: dict[str, S[str]], stray: tuple[str, ...] = ()) -> str:
    """A query string (with its `?`, or nothing), each pair encoded its own way."""
    parts = []
    for key, value in draw(pairs(params, stray)):
        how = draw(st.sampled_from(["percent", "plus", "raw"]))
        parts.append(encode(key, how) if value is None else f"{encode(key, how)}={encode(value, how)}")
    joined = "&".join(parts)
    if draw(st.integers(0, 9)) == 0:
        joined = draw(st.sampled_from(["&", "&&", "=", "?"])) + joined
    return "?" + joined if joined else ""


def request_ids() -> S[tuple[tuple[str, str], ...]]:
    """No id (the server makes one), a usable one, one it must not reuse, or two."""
    return st.sampled_from(
        [
            (),
            (),
            (("X-Request-ID", "req-42"),),
            (("x-request-id", "no spaces allowed"),),
            (("x-request-id", "a"),),
            (("x-request-id", "first"), ("x-request-id", "second")),
        ]
    )


@st.composite
def get_call(draw: st.DrawFn, path: str, params: dict[str, S[str]], *allowed: str, stray: tuple[str, ...] = ()) -> Call:
    method = draw(methods(*(allowed or ("GET",))))
    slash = draw(st.sampled_from(["", "", "", "", "", "", "", "", "/"]))  # the trailing-slash redirect
    return Call(method, f"{API}{path}{slash}{draw(query(params, stray))}", draw(request_ids()))


# -- path segments ----------------------------------------------------------------------


def segment(values: S[str]) -> S[str]:
    return st.tuples(values, st.sampled_from(["percent", "raw"])).map(
        lambda v: quote(v[0], safe="" if v[1] == "percent" else "%/")
    )


@st.composite
def path_call(draw: st.DrawFn, template: str, segments: dict[str, S[str]], params: dict[str, S[str]]) -> Call:
    path = template.format(**{name: draw(segment(values)) for name, values in segments.items()})
    return Call(draw(methods("GET")), f"{API}{path}{draw(query(params))}", draw(request_ids()))


PATH_TEXT = st.one_of(TEXT, st.sampled_from(["..", ".", "a/b", "%2F", "%zz", "é", " ", "a b", "~x", "1;2"]))


# -- headers and cookies ----------------------------------------------------------------

HEADER_TEXT = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=10),
    st.text(st.characters(min_codepoint=0xA0, max_codepoint=0x2FF), min_size=1, max_size=4).map(
        lambda s: s.encode("utf-8")
    ),
    st.sampled_from(["a, b", "a,b", " padded ", ""]),
)


@st.composite
def header_list(draw: st.DrawFn, options: list[tuple[str, S[str | bytes]]]) -> tuple[tuple[str, str | bytes], ...]:
    """Any of ``options`` (name, values), each absent, once or repeated, in any order."""
    out: list[tuple[str, str | bytes]] = []
    for name, values in options:
        out.extend((name, v) for v in draw(st.lists(values, max_size=3)))
    return tuple(draw(st.permutations(out)))


COOKIE_PIECES = st.one_of(
    st.tuples(
        st.sampled_from(["session", "visits", "theme", "auth-token", "Visits", "other"]), st.one_of(INTS, TEXT)
    ).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.sampled_from(['visits="7"', "session", "=x", "a=b=c", "session=é", "theme=green", "auth-token=t0k", " ", ""]),
)


@st.composite
def cookie_headers(draw: st.DrawFn) -> tuple[tuple[str, str | bytes], ...]:
    """No cookie, one `Cookie` header of pieces joined sloppily, or two `Cookie` headers."""
    headers: list[tuple[str, str | bytes]] = []
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 2]))):
        pieces = draw(st.lists(COOKIE_PIECES, min_size=1, max_size=5))
        separator = draw(st.sampled_from(["; ", ";", " ; ", ",", "; ;"]))
        headers.append(("Cookie", separator.join(pieces).encode("utf-8")))
    return tuple(headers)


# -- bodies ------------------------------------------------------------------------------


class Number(str):
    """A JSON number written exactly as given (`1e400`, `-0`, `1.50`), which json.dumps cannot do."""


def dumps(value: Any, indent: int | None = None) -> str:
    numbers: list[str] = []

    def mark(v: Any) -> Any:
        if isinstance(v, Number):
            numbers.append(str(v))
            return f"\x00{len(numbers) - 1}\x00"
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list):
            return [mark(x) for x in v]
        return v

    text = json.dumps(mark(value), indent=indent, ensure_ascii=False)
    for i, number in enumerate(numbers):
        text = text.replace(f'"\\u0000{i}\\u0000"', number)
    return text


NUMBERS = st.sampled_from(["1e400", "-0", "1.0", "1E2", "100000000000000000000000", "1e-400", "1.50", "3.999"]).map(
    Number
)
JSON_ANY = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | TEXT | NUMBERS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
EMAILS = st.sampled_from(["a@b", "x.y@z.example", "bad", "", "a@@b", "a b@c"])
OWNER = st.one_of(
    st.fixed_dictionaries({"id": st.integers(-5, 5), "email": EMAILS}),
    st.fixed_dictionaries({}, optional={"id": st.one_of(NUMBERS, JSON_ANY), "email": st.one_of(EMAILS, JSON_ANY)}),
    JSON_ANY,
)
_ITEM_OPTIONAL = {
    "tags": st.one_of(st.lists(TEXT, max_size=3), JSON_ANY),
    "note": st.one_of(st.none(), TEXT, JSON_ANY),
    "displayName": st.one_of(TEXT, JSON_ANY),
    "display": TEXT,
    "unknown": JSON_ANY,
}
ITEM = st.one_of(
    st.fixed_dictionaries(
        {
            "name": st.text(max_size=22),
            "price": st.one_of(st.decimals("0", "999", places=2).map(lambda d: Number(str(d))), NUMBERS, TEXT),
            "owner": OWNER,
        },
        optional=_ITEM_OPTIONAL,
    ),
    st.fixed_dictionaries({}, optional={"name": JSON_ANY, "price": JSON_ANY, "owner": OWNER, **_ITEM_OPTIONAL}),
)
JSON_TYPES = (
    ["application/json"] * 6
    + ["application/json; charset=utf-8", "application/merge-patch+json", "Application/JSON", "application/json;"]
    + ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", "application", "multipart/form-data"]
)


@st.composite
def json_body(draw: st.DrawFn, value: S[Any]) -> tuple[tuple[tuple[str, str | bytes], ...], bytes]:
    """(headers, body): ``value`` (or a wrong shape) as JSON, written one of many ways, under one
    of many content types, or none."""
    doc = draw(st.one_of(value, value, value, JSON_ANY, st.lists(value, max_size=2)))
    text = dumps(doc, indent=draw(st.sampled_from([None, None, 2])))
    form = draw(
        st.sampled_from(["utf-8"] * 8 + ["utf-8-sig", "utf-16", "latin-1", "cut", "trailing", "empty", "blank"])
    )
    if form == "cut":
        body = text.encode()[: draw(st.integers(0, max(0, len(text) - 1)))]
    elif form == "trailing":
        body = text.encode() + draw(st.sampled_from([b" x", b"}", b"\n", b"\x00"]))
    elif form == "empty":
        body = b""
    elif form == "blank":
        body = b" \n"
    else:
        body = text.encode(form, errors="replace")
    kind = draw(st.sampled_from([*JSON_TYPES, None, None, None]))
    return ((("Content-Type", kind),) if kind is not None else ()), body


@st.composite
def json_call(draw: st.DrawFn, path: str, value: S[Any], params: dict[str, S[str]] | None = None) -> Call:
    headers, body = draw(json_body(value))
    url = f"{API}{path}{draw(query(params or {}))}"
    chunks = draw(st.sampled_from([1, 1, 1, 3]))
    return Call(draw(methods("POST")), url, headers + draw(request_ids()), body, chunks)


BOUNDARY = "sig-boundary-7d3f"


def multipart(
    parts: list[tuple[str, str | None, str | None, bytes]], boundary: str = BOUNDARY, end: bool = True
) -> bytes:
    """A multipart/form-data body of (name, filename, content type, data) parts, boundary fixed."""
    out = b""
    for name, filename, kind, data in parts:
        disposition = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\n{disposition}\r\n".encode()
        if kind is not None:
            out += f"Content-Type: {kind}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if end else b"")


FIELD_DATA = st.one_of(INTS, BOOLS, TEXT).map(lambda s: s.encode("utf-8"))
FILE_DATA = st.one_of(st.binary(max_size=40), st.just(b""), st.just(b"line\r\n--sig-boundary-7d3f-not-quite\r\n"))


@st.composite
def form_call(draw: st.DrawFn, path: str, fields: dict[str, S[bytes]], files: tuple[str, ...] = ()) -> Call:
    """The fields url-encoded or as multipart (files only as multipart), or a wrong kind of body."""
    kind = draw(st.sampled_from(["multipart"] * 4 + ["urlencoded"] * 2 + ["json", "broken", "no-boundary"]))
    parts: list[tuple[str, str | None, str | None, bytes]] = [
        (name, None, None, data)
        for name, values in fields.items()
        for data in draw(st.lists(values, min_size=0 if draw(st.booleans()) else 1, max_size=2))
    ]
    for name in files:
        for _ in range(draw(st.sampled_from([0, 1, 1, 2]))):
            filename = draw(st.sampled_from(["a.txt", "", "ü.bin", "../x", "a;b.txt"]))
            parts.append((name, filename, draw(st.sampled_from([None, "text/plain", "image/png"])), draw(FILE_DATA)))
    parts = list(draw(st.permutations(parts)))
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    if kind == "urlencoded":
        body = "&".join(
            f"{quote_plus(n)}={quote_plus(d.decode('latin-1'))}" for n, f, _, d in parts if f is None
        ).encode()
        content_type = draw(
            st.sampled_from(["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8"])
        )
    elif kind == "json":
        body, content_type = dumps({n: d.decode("latin-1") for n, _, _, d in parts}).encode(), "application/json"
    else:
        if kind == "broken":
            # Cut off in a last plain field: Starlette drops an unfinished part, and an
            # unfinished file part would leave its temporary file to the garbage collector
            # (a ResourceWarning, and so an error in this suite, whenever that runs).
            parts.append(("tail", None, None, b"cut"))
        body = multipart(parts, end=kind != "broken")
        if kind == "no-boundary":
            content_type = "multipart/form-data"
    chunks = draw(st.sampled_from([1, 1, 1, 4]))
    return Call(
        draw(methods("POST")), f"{API}{path}", (("Content-Type", content_type), *draw(request_ids())), body, chunks
    )


# -- one strategy per route ---------------------------------------------------------------

STREAM_N = st.one_of(st.integers(0, 4).map(str), st.sampled_from(["21", "-1", "x", ""]))
INT_OR_TEXT = st.one_of(INTS, TEXT)

ROUTES: dict[str, S[Call]] = {
    "scalars": get_call("/scalars", {"i": INTS, "f": FLOATS, "b": BOOLS, "s": TEXT}, stray=("I", "s ")),
    "typed": get_call(
        "/typed", {"color": COLORS, "when": DATETIMES, "uid": UUIDS, "amount": DECIMALS, "level": LEVELS}
    ),
    "defaults": get_call(
        "/defaults",
        {
            "n": INTS,
            "ratio": FLOATS,
            "flag": BOOLS,
            "name": TEXT,
            "opt": INTS,
            "note": TEXT,
            "day": DATES,
            "color": COLORS,
        },
    ),
    "lists": get_call("/lists", {"ids": INTS, "tags": TEXT, "maybe": FLOATS, "colors": COLORS}, stray=("ids[]",)),
    "constraints": get_call(
        "/constraints",
        {"q-term": st.one_of(TEXT, st.sampled_from(["ab", "abcdefgh", "abcdefghi", "a", "AB", "ab1"])), "page": INTS}
        | {"score": FLOATS, "pageSize": INTS, "code": TEXT},
        stray=("term", "page_size", "Q-TERM"),
    ),
    "query_model": get_call(
        "/query_model",
        {"limit": INTS, "order": st.sampled_from(["asc", "desc", "up", ""]), "tags": TEXT},
        stray=("zzz",),
    ),
    "item_by_id": path_call("/items/{item_id}", {"item_id": INT_OR_TEXT}, {}),
    "item_by_name": path_call("/names/{name}", {"name": PATH_TEXT}, {}),
    "pair": path_call("/pair/{a}/{b}", {"a": INTS, "b": COLORS}, {"extra": INTS}),
    "file_path": path_call("/files/{rest}", {"rest": st.lists(PATH_TEXT, max_size=4).map("/".join)}, {}),
    "headers": st.builds(
        lambda call, headers: Call(call.method, call.url, call.headers + headers),
        get_call("/headers", {}),
        header_list(
            [
                ("user-agent", HEADER_TEXT),
                ("x-count", INTS),
                ("X-Count", INTS),
                ("x-tags", HEADER_TEXT),
                ("raw_name", HEADER_TEXT),
                ("raw-name", HEADER_TEXT),
                ("x-token", st.one_of(HEADER_TEXT, st.just("tok"))),
            ]
        ),
    ),
    "cookies": st.builds(
        lambda call, headers: Call(call.method, call.url, call.headers + headers),
        get_call("/cookies", {}),
        cookie_headers(),
    ),
    "model": json_call("/model", ITEM),
    "model_query": json_call("/model_query", ITEM, {"dry_run": BOOLS, "limit": INTS}),
    "embedded": json_call(
        "/embedded",
        st.fixed_dictionaries({}, optional={"item": ITEM, "importance": st.one_of(st.integers(-2, 3), JSON_ANY)}),
    ),
    "embed": json_call("/embed", st.one_of(st.fixed_dictionaries({"owner": OWNER}), OWNER)),
    "plain_dict": json_call("/dict", st.dictionaries(TEXT, JSON_ANY, max_size=4)),
    "list_body": json_call("/list_body", st.lists(st.one_of(st.integers(-9, 9), NUMBERS, JSON_ANY), max_size=4)),
    "optional_body": json_call("/optional_body", OWNER),
    "created": json_call("/created", st.fixed_dictionaries({}, optional={"name": JSON_ANY})),
    "form": form_call("/form", {"username": FIELD_DATA, "age": FIELD_DATA, "tags": FIELD_DATA, "agree": FIELD_DATA}),
    "upload": form_call("/upload", {"note": FIELD_DATA, "blob": FIELD_DATA}, files=("file", "blob")),
    "uploads": form_call("/uploads", {"files": FIELD_DATA}, files=("files",)),
    "request": st.builds(
        lambda call, headers, body: Call(call.method, call.url, call.headers + headers, body),
        get_call("/request", {"x": INTS}, "GET", "POST"),
        cookie_headers(),
        st.one_of(st.none(), st.binary(max_size=20)),
    ),
    "sync": get_call("/sync", {"x": INTS, "y": TEXT, "z": INTS}, "GET", "POST"),
    "raw": get_call("/raw", {"x": INTS, "names": TEXT}),
    "missing": path_call("/missing/{key}", {"key": PATH_TEXT}, {"detail_as": st.sampled_from(["text", "dict", "x"])}),
    "guarded": st.builds(
        lambda call, headers: Call(call.method, call.url, call.headers + headers),
        get_call("/guarded", {}),
        header_list([("Authorization", st.sampled_from(["Bearer open-sesame", "Bearer nope", "bearer open-sesame"]))]),
    ),
    "boom": get_call("/boom", {"x": INTS}),
    "redirect": get_call(
        "/redirect",
        {"to": st.one_of(st.sampled_from(["/elsewhere", "https://example.com/a?b=c", "//x"]), TEXT)}
        | {"code": st.sampled_from(["301", "302", "303", "307", "308", "200", "x"])},
    ),
    "headers_out": get_call("/headers_out", {"value": TEXT, "age": INTS}),
    "stream": get_call("/stream", {"n": STREAM_N, "word": TEXT, "fail": BOOLS}),
    "depends": get_call("/depends", {"offset": INTS, "limit": INTS, "q": TEXT}),
    "mix": st.builds(
        lambda call, headers, cookies: Call(
            call.method, call.url, call.headers + headers + cookies, call.body, call.chunks
        ),
        st.one_of(json_call("/mix/1", OWNER, {"q": INTS}), json_call("/mix/0", OWNER, {"q": INTS})),
        header_list([("x-trace", INTS)]),
        cookie_headers(),
    ),
}
