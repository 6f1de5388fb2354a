"""Reading the Plotly charts an HTML report embeds: what a reader of the report would see."""

from __future__ import annotations

import json
import re
from typing import Any


def traces(page: str, div_id: str) -> list[dict[str, Any]]:
    """Return the Plotly traces drawn in the div `div_id` of `page`."""
    found = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*', page)
    assert found, f"no chart {div_id!r} in the page"
    data: list[dict[str, Any]] = json.JSONDecoder().raw_decode(page, found.end())[0]
    return data


def layout(page: str, div_id: str) -> dict[str, Any]:
    """Return the Plotly layout of the chart in the div `div_id` of `page`."""
    found = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*', page)
    assert found, f"no chart {div_id!r} in the page"
    decoder = json.JSONDecoder()
    _, end = decoder.raw_decode(page, found.end())
    shape: dict[str, Any] = decoder.raw_decode(page, page.index("{", end))[0]
    return shape
