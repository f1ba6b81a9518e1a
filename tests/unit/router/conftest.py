from __future__ import annotations

import pytest

from appliance.agents import BUILTIN_TYPES
from appliance.router import Router


@pytest.fixture(scope="module")
def router() -> Router:
    """The real model, loaded once per module, with the built-in agent types."""
    r = Router()
    for cls in BUILTIN_TYPES:
        r.add_type(cls)
    return r
