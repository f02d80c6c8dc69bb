"""The envelope's bytes: the success envelope, assembled around its serialized data, is byte
for byte what serializing the whole envelope gives."""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic_core import to_json

from framex.http.envelope import envelope_body, timestamp


class Thing(BaseModel):
    name: str
    when: datetime.datetime


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def whole(data: Any, body: bytes, **extra: Any) -> bytes:
    stamp = json.loads(body)["timestamp"]
    envelope = {"status": 200, "message": "success", "timestamp": stamp, "data": data}
    return to_json({**envelope, **extra})


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_success_envelope_is_the_whole_envelope_serialized(data: Any) -> None:
    body = envelope_body(data)
    assert body == whole(data, body)


def test_models_and_dates_inside_data() -> None:
    data = {"things": [Thing(name='a\u00e9"', when=datetime.datetime(2026, 1, 2, 3, 4, 5))]}
    body = envelope_body(data)
    assert body == whole(data, body)


def test_other_envelopes_keep_their_fields() -> None:
    body = envelope_body(None, status=404, message="Not Found", request_id="abc")
    assert json.loads(body) == {
        "status": 404,
        "message": "Not Found",
        "timestamp": json.loads(body)["timestamp"],
        "data": None,
        "request_id": "abc",
    }


def test_timestamp_shape() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", timestamp())
