"""An event that cannot work is refused where it is defined, saying what to do."""

from __future__ import annotations

import msgspec
import pytest

from appliance.events import Event

pytestmark = pytest.mark.unit


def test_an_event_field_named_like_the_tag_field_is_refused_with_the_fix() -> None:
    with pytest.raises(TypeError) as err:

        class ServiceFound(Event, tag="test.service_found"):
            kind: str

    message = str(err.value)
    assert "ServiceFound" in message
    assert "'kind'" in message
    assert "rename" in message


def test_an_event_without_the_colliding_field_still_round_trips() -> None:
    class Found(Event, tag="test.found_ok"):
        category: str

    decoded = msgspec.json.decode(msgspec.json.encode(Found(category="x")), type=Found)
    assert decoded == Found(category="x")
    assert msgspec.json.encode(Found(category="x")) == b'{"kind":"test.found_ok","category":"x"}'
