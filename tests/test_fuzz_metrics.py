"""Program output: `parse_metrics` over any line never raises, stays linear in the line's length,
and returns only floats keyed by names of the stdout protocol (`name=value`)."""

from __future__ import annotations

import math
import re
import time

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from sweepq.runner import parse_metrics

NAME = re.compile(r"[A-Za-z_][\w./-]*")
FUZZ = settings(derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOKENS = ["a", "val_loss", "=", ":", " ", ",", ";", "\t", "1", "0.5", ".", "e", "E", "-", "+", "inf", "NaN", "1e999"]
TOKENS += ["\x00", "\ufffd", "é", "K", "ſ", "٣", "\r", "x/y", "=:", "1.2.3", "--", "9" * 50]


def _check(line: str) -> dict[str, float]:
    t0 = time.perf_counter()
    found = parse_metrics(line)
    assert time.perf_counter() - t0 < 2 + len(line) / 1e6
    for key, value in found.items():
        assert NAME.fullmatch(key), key
        assert key[0].isascii() and (key[0].isalpha() or key[0] == "_"), key
        assert isinstance(value, float) and (math.isfinite(value) or math.isinf(value) or math.isnan(value))
    return found


@settings(FUZZ, max_examples=1500)
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map("".join))
def test_token_soup_lines(line: str) -> None:
    _check(line)


@settings(FUZZ, max_examples=500)
@given(st.text(max_size=400))
def test_arbitrary_unicode_lines(line: str) -> None:
    _check(line)


@settings(FUZZ, max_examples=300)
@given(st.binary(max_size=400))
def test_binary_junk_decoded_as_the_runner_does(data: bytes) -> None:
    _check(data.decode("utf-8", errors="replace"))


@settings(FUZZ, max_examples=30)
@given(st.sampled_from(["1", " ", "a", "a=", "=1", " a", "a=1", ",a=1e", "${", "\t:"]), st.integers(10_000, 200_000))
def test_long_repetitive_lines_are_linear(unit: str, n: int) -> None:
    _check(unit * (n // len(unit)) + "x")


def test_found_digit_runs_backtracked_quadratically() -> None:
    """`a=` + 20k digits + `x` took 13 s (`\\d+\\.?\\d*` retried every split); now milliseconds."""
    t0 = time.perf_counter()
    assert parse_metrics("a=" + "1" * 1_000_000 + "x") == {}
    assert time.perf_counter() - t0 < 2


def test_found_kelvin_sign_was_a_name() -> None:
    """IGNORECASE made [A-Za-z] match U+212A KELVIN SIGN and U+017F: names are ASCII-led now."""
    assert parse_metrics("\u212a=1 \u017f=2 k=3") == {"k": 3.0}


def test_the_protocol_still_parses() -> None:
    assert parse_metrics("val_loss=0.31 epoch=3") == {"val_loss": 0.31, "epoch": 3.0}
    found = parse_metrics("a=1,b=-2.5e3;c: inf d=NaN e=1.x f=1e g=.5 h=5. i=-INF")
    expected = {"a": 1.0, "b": -2500.0, "c": math.inf, "g": 0.5, "h": 5.0, "i": -math.inf}
    assert {k: v for k, v in found.items() if k != "d"} == expected
    assert math.isnan(found["d"])
