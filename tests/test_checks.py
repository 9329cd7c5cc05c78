"""pathmnist.checks: every accepted value comes back (as a plain int, float, str or bool),
every refused one raises PathMNISTError whose one-line message names the argument and the
value, and a bool is never taken for a number. Hypothesis properties over bounded
integers and floats, with the bounds themselves as @example."""

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from pathmnist import checks
from pathmnist.errors import PathMNISTError

NAME = "TrainConfig widget"  # A name with a space: the message must quote it whole.

bounds = st.integers(-1000, 1000)
finite = st.floats(-1e6, 1e6, allow_nan=False)
not_numbers = st.sampled_from([None, "3", b"3", [3], (3,), {"x": 3}, 3j, object()])


def refused(call, value):
    """Run `call`, expect a PathMNISTError, and check its message is one sentence that
    names the argument and the refused value; return the message."""
    with pytest.raises(PathMNISTError) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{NAME}={value!r} is not allowed; ")
    assert message.endswith(".") and "\n" not in message
    assert isinstance(info.value, ValueError)  # `except ValueError` still catches it.
    return message


# whole


@given(low=bounds, span=st.integers(0, 1000), data=st.data())
@example(low=0, span=0, data=None)  # The one-value range [0, 0].
def test_whole_returns_every_int_in_range(low, span, data):
    """Every int in [low, high] comes back equal and as a plain int (numpy ints too)."""
    high = low + span
    value = low if data is None else data.draw(st.integers(low, high), label="value")
    for given_value in (value, np.int64(value), np.int32(value)):
        out = checks.whole(given_value, NAME, low, high)
        assert out == value and type(out) is int


@given(low=bounds, span=st.integers(0, 1000), outside=st.integers(1, 10**6), above=st.booleans())
@example(low=1, span=0, outside=1, above=False)  # batch_size=0 with low 1.
def test_whole_refuses_ints_out_of_range(low, span, outside, above):
    """An int below low or above high is refused, and the message gives the range."""
    high = low + span
    value = high + outside if above else low - outside
    message = refused(lambda: checks.whole(value, NAME, low, high), value)
    assert f"[{low}, {high}]" in message


def test_whole_without_high_says_at_least():
    """With no upper bound the fix reads '>= low' and any large int is fine."""
    assert checks.whole(10**30, NAME, 1) == 10**30
    assert ">= 1" in refused(lambda: checks.whole(0, NAME, 1), 0)


@pytest.mark.parametrize("value", [True, False])
def test_whole_refuses_bools(value):
    """True is an int in Python, but batch_size=True must not mean batch 1."""
    refused(lambda: checks.whole(value, NAME, 0, 10), value)


@given(value=st.one_of(finite, not_numbers))
@example(value=8.0)  # A whole float is still not an int.
@example(value=float("nan"))
def test_whole_refuses_what_is_not_an_int(value):
    """Floats (whole ones too), strings, None and containers are refused."""
    refused(lambda: checks.whole(value, NAME, -(10**7)), value)


# real


@given(low=finite, width=st.floats(0, 1e6), t=st.floats(0, 1), as_int=st.booleans())
@example(low=0.0, width=0.0, t=0.0, as_int=False)  # The closed bound itself.
def test_real_returns_every_number_in_a_closed_range(low, width, t, as_int):
    """Every finite number in [low, high] comes back equal as a float; ints (and numpy
    floats) are accepted as numbers."""
    high = low + width
    value = min(max(low + t * width, low), high)
    if as_int:
        value = math.ceil(low)
        assume(value <= high)
    for given_value in (value, np.float64(value)):
        out = checks.real(given_value, NAME, low, high)
        assert out == value and type(out) is float


@given(low=finite, width=st.floats(1e-3, 1e6), t=st.floats(0, 1))
def test_open_bounds_exclude_themselves(low, width, t):
    """low_open / high_open refuse the bound and keep the inside: lr > 0 and
    momentum < 1 are such ranges."""
    high = low + width
    value = low + t * width
    if low < value < high:
        assert checks.real(value, NAME, low, high, low_open=True, high_open=True) == value
    message = refused(lambda: checks.real(low, NAME, low, high, low_open=True), low)
    assert f"({low}, {high}]" in message
    message = refused(lambda: checks.real(high, NAME, low, high, high_open=True), high)
    assert f"[{low}, {high})" in message


@given(low=finite, width=st.floats(0, 1e6), outside=st.floats(1e-3, 1e6), above=st.booleans())
def test_real_refuses_numbers_out_of_range(low, width, outside, above):
    """A finite number below low or above high is refused."""
    high = low + width
    value = high + outside if above else low - outside
    assume(value > high if above else value < low)  # Not lost to rounding.
    refused(lambda: checks.real(value, NAME, low, high), value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), np.float64("nan")])
def test_real_refuses_non_finite_numbers_even_unbounded(value):
    """NaN and the infinities are refused even with no bounds (NaN fails every <, too)."""
    refused(lambda: checks.real(value, NAME), value)


@given(value=st.one_of(st.booleans(), not_numbers))
def test_real_refuses_bools_and_non_numbers(value):
    """A bool, a string, None or a container is not a number here."""
    refused(lambda: checks.real(value, NAME), value)


# probability


@given(st.floats(0, 1))
@example(0.0)
@example(1.0)
def test_probability_accepts_the_closed_unit_interval(p):
    """Every p in [0, 1] comes back, both ends included."""
    assert checks.probability(p, NAME) == p


@given(st.one_of(st.floats(-1e6, -1e-9), st.floats(1 + 1e-9, 1e6), st.booleans()))
@example(float("nan"))
def test_probability_refuses_outside_and_bools(p):
    """Below 0, above 1, NaN and bools are refused."""
    refused(lambda: checks.probability(p, NAME), p)


# choice


words = st.text(st.characters(categories=("Ll", "Nd")), min_size=1, max_size=8)


@given(allowed=st.lists(words, min_size=1, max_size=6, unique=True), data=st.data())
def test_choice_returns_an_allowed_value_and_lists_them_when_refusing(allowed, data):
    """An allowed string comes back; any other string is refused and the message lists
    every allowed choice in order."""
    value = data.draw(st.sampled_from(allowed), label="value")
    assert checks.choice(value, NAME, tuple(allowed)) == value
    other = data.draw(words.filter(lambda w: w not in allowed), label="other")
    message = refused(lambda: checks.choice(other, NAME, allowed), other)
    assert message.endswith(f"choose one of {', '.join(allowed)}.")


@pytest.mark.parametrize("value", [0, 1.0, None, True, ["adam"], b"adam"])
def test_choice_refuses_non_strings(value):
    """Only a str can be a choice: ["adam"] and b"adam" are not "adam"."""
    refused(lambda: checks.choice(value, NAME, ("adam", "sgd")), value)


# flag


@pytest.mark.parametrize("value", [True, False])
def test_flag_returns_bools(value):
    """True and False come back as themselves."""
    assert checks.flag(value, NAME) is value


@pytest.mark.parametrize("value", [0, 1, 1.0, "yes", "True", None, np.int64(1)])
def test_flag_refuses_truthy_values(value):
    """0, 1, "yes" and None are refused: a flag is exactly True or False."""
    assert "use True or False" in refused(lambda: checks.flag(value, NAME), value)


@settings(deadline=None, max_examples=25)
@given(b=st.integers(1, 4), h=st.integers(1, 6), w=st.integers(1, 6))
def test_batch_layout_names_the_spatial_dims_of_either_layout(b, h, w):
    """uint8 (B, H, W, 3) is NHWC, float (B, 3, H, W) is NCHW; anything else is refused
    with one sentence naming the caller."""
    import torch

    assert checks.batch_layout(torch.zeros(b, h, w, 3, dtype=torch.uint8), "t") == (1, 2)
    assert checks.batch_layout(torch.zeros(b, 3, h, w), "t") == (2, 3)
    for bad in (torch.zeros(b, h, w, 3), torch.zeros(b, 3, h, w, dtype=torch.uint8)):
        if bad.shape[1] == 3 and bad.shape[-1] == 3:
            continue  # A 3x3 image is ambiguous by shape alone; the dtype decides.
        with pytest.raises(PathMNISTError, match=r"^t got"):
            checks.batch_layout(bad, "t")
    with pytest.raises(PathMNISTError, match=r"pass a torch\.Tensor"):
        checks.batch_layout([[1]], "t")


def test_cpu_generator_accepts_none_or_a_cpu_generator_only():
    """Random decisions are drawn on the CPU: None and a CPU generator pass, others not."""
    import torch

    g = torch.Generator()
    assert checks.cpu_generator(g, "t") is g and checks.cpu_generator(None, "t") is None
    with pytest.raises(PathMNISTError, match=r"CPU torch\.Generator"):
        checks.cpu_generator(0, "t")
