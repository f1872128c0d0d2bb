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


def test_a_model_without_rating_tokens_says_what_to_use_instead() -> None:
    """A chat model has no OpenLongCoT rating tokens: the value searches fail with an error that
    names the alternatives, not only the token count."""
    from openberry.formats.openlongcot import RATING_TOKENS
    from openberry.models.base import ModelError
    from openberry.models.fake import FakePolicy
    from openberry.records import Problem
    from openberry.search import make_search, run_search

    policy = FakePolicy(seed=0, special_tokens=())  # every rating token spelled out in characters
    problem = Problem(id="p", question="Compute 2 + 3.")
    with pytest.raises(ModelError, match="--value-model") as err:
        run_search(make_search("beam", 2), [problem], policy)
    assert RATING_TOKENS["positive"] in str(err.value)
    with pytest.raises(ModelError, match=r"not one$"):  # any other candidate: the count alone
        policy.next_token_probs(["x"], ["ab"])
