import math

import pytest

from openberry.records import Example, Generation, Problem, RecordError


def test_problem_has_no_answer_field():
    """The oracle boundary is structural: search receives a Problem, which cannot hold an answer."""
    fields = set(Problem.__dataclass_fields__)
    assert fields == {"id", "question", "source", "meta"}
    ex = Example(Problem("p1", "1+1?"), answer="2", solution="1+1=2")
    assert "2" not in ex.problem.to_dict().values()


def test_problem_round_trip_and_errors():
    p = Problem("gsm8k/0", "How many?", source="gsm8k", meta={"level": 3})
    assert Problem.from_dict(p.to_dict()) == p
    with pytest.raises(RecordError, match="missing field 'question'"):
        Problem.from_dict({"id": "x"})
    with pytest.raises(RecordError, match="must be str"):
        Problem.from_dict({"id": 3, "question": "q"})
    with pytest.raises(RecordError, match="non-empty"):
        Problem("", "q")


def test_example_round_trip():
    ex = Example(Problem("a", "q", "src"), answer="\\frac12", solution="s")
    assert Example.from_dict(ex.to_dict()) == ex
    assert ex.id == "a"


def test_generation_counts_and_round_trip():
    g = Generation("abc", token_ids=(1, 2, 3), logprobs=(-0.1, -0.2, -0.3), finish_reason="length")
    assert g.num_tokens == 3
    assert math.isclose(g.sum_logprob, -0.6)
    assert Generation.from_dict(g.to_dict()) == g
    # A server without token ids still reports how many tokens it generated.
    assert Generation("abc", num_tokens=7).num_tokens == 7
    assert math.isnan(Generation("x").sum_logprob)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"finish_reason": "done"}, "finish_reason"),
        ({"token_ids": (1, 2), "num_tokens": 3}, "num_tokens=3"),
        ({"token_ids": (1, 2), "logprobs": (-1.0,)}, "logprobs"),
    ],
)
def test_generation_rejects_inconsistent_fields(kwargs, message):
    with pytest.raises(RecordError, match=message):
        Generation("t", **kwargs)
