import pytest

from openberry.models.base import SamplingParams


def test_defaults_and_greedy():
    params = SamplingParams()
    assert (params.n, params.temperature, params.stop) == (1, 1.0, ())
    assert SamplingParams(temperature=0).greedy
    assert SamplingParams(stop=["\n"]).stop == ("\n",)  # lists become tuples: frozen all the way


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 0}, "n must be >= 1"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"stop": ("",)}, "non-empty"),
    ],
)
def test_invalid_settings_explain_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)
