"""``--trust-remote-code``: off by default, carried to every role's `ModelSpec`, and recorded in
a run's model identity only when on (so runs from before the option resume as they are)."""

from __future__ import annotations

import argparse

from openberry.cli._args import add_backend_args, add_role_args, model_spec, role_specs
from openberry.evaluation.runner import _spec_identity
from openberry.models.spec import ModelSpec


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="berry-tiny")
    add_backend_args(parser)
    add_role_args(parser)
    return parser.parse_args(list(argv))


def test_off_by_default_and_carried_to_the_value_model() -> None:
    assert model_spec(parse()).trust_remote_code is False
    args = parse("--value-model", "some/prm", "--trust-remote-code")
    assert role_specs(args)["value"] == ModelSpec("some/prm", trust_remote_code=True)


def test_recorded_only_when_on() -> None:
    assert "trust_remote_code" not in _spec_identity(ModelSpec("m"))
    assert _spec_identity(ModelSpec("m", trust_remote_code=True))["trust_remote_code"] is True
