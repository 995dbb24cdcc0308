"""What an HTTP answer means: status classification and the Retry-After hint (pure)."""

from __future__ import annotations

import pytest

from relay._sinks.status import (
    Disposition,
    cap_retry_after,
    classify_status,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("status", "disposition"),
    [
        (200, Disposition.DELIVERED),
        (201, Disposition.DELIVERED),
        (204, Disposition.DELIVERED),
        (301, Disposition.SETUP),
        (307, Disposition.SETUP),
        (400, Disposition.PERMANENT),
        (401, Disposition.AUTH),
        (403, Disposition.SETUP),
        (404, Disposition.PERMANENT),
        (408, Disposition.RETRY),
        (409, Disposition.PERMANENT),
        (413, Disposition.PERMANENT),
        (422, Disposition.PERMANENT),
        (429, Disposition.RETRY),
        (500, Disposition.RETRY),
        (502, Disposition.RETRY),
        (503, Disposition.RETRY),
        (504, Disposition.RETRY),
    ],
)
def test_classify_status(status: int, disposition: Disposition) -> None:
    assert classify_status(status) is disposition


def test_parse_retry_after_seconds_and_dates() -> None:
    now = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    assert parse_retry_after("5", now=now) == 5.0
    assert parse_retry_after(" 0 ", now=now) == 0.0
    assert parse_retry_after("1.5", now=now) == 1.5
    assert parse_retry_after("-3", now=now) == 0.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now=now) == pytest.approx(30.0)
    assert parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now=now) == 0.0  # past
    for bad in (None, "", "soon", "nan", "inf", "Tue, 14 Nov 2023"):
        assert parse_retry_after(bad, now=now) is None


def test_retry_after_is_capped() -> None:
    assert cap_retry_after(86_400.0, 300.0) == 300.0
    assert cap_retry_after(2.0, 300.0) == 2.0
    assert cap_retry_after(None, 300.0) is None
