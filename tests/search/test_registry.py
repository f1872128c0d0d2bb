"""The method registry: one entry per method, read by search, the command line and the server."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from openberry.search import METHODS, make_config
from openberry.search.registry import DEFAULT_ROLLOUTS, REGISTRY, Scaled


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_method_has_config_search_budget_and_help(name: str) -> None:
    m = REGISTRY[name]
    cls = m.config_class()
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    assert callable(m.search_function())
    assert METHODS[name] == (cls, m.search_function())
    fields = {f.name for f in dataclasses.fields(cls)}
    assert {field for field, _ in m.budget} <= fields
    assert m.summary and m.budget_help


def test_budget_rules_as_data() -> None:
    assert make_config("greedy", 8) == make_config("greedy")
    assert make_config("self-consistency", 5).samples == 5
    assert make_config("best-of-n", 3).samples == 3
    assert (make_config("beam", 1).width, make_config("beam", 1).branch) == (1, 2)
    assert (make_config("beam", 6).width, make_config("beam", 6).branch) == (3, 2)
    assert make_config("mctsr", 3).rollouts == 3 and make_config("sr-mcts", 2).rollouts == 2
    assert make_config("meta-mcts", 3).simulations == 12
    assert make_config("step-mcts", 5).simulations == 5
    assert Scaled(per=2)(1) == 1 and Scaled(times=4)(2) == 8
    assert DEFAULT_ROLLOUTS == 4


def test_cli_server_and_search_list_the_same_methods() -> None:
    from openberry.cli import eval as cli_eval
    from openberry.cli.main import build_parser
    from openberry.serve.search_models import STEP_METHODS, search_model_names

    names = list(REGISTRY)
    assert list(METHODS) == names
    assert list(search_model_names().values()) == names
    assert sorted(STEP_METHODS) == ["beam", "meta-mcts", "step-mcts"]
    assert cli_eval._methods(",".join(names)) == tuple(names)
    solve = build_parser()._subparsers._group_actions[0].choices["solve"]  # type: ignore[union-attr]
    (method,) = [a for a in solve._actions if a.dest == "method"]
    assert list(method.choices) == names


def test_registry_imports_no_search_implementation() -> None:
    code = (
        "import sys, openberry.search.registry, openberry.configs\n"
        "print(sorted(m for m in sys.modules if m.startswith('openberry.search.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['openberry.search.registry']"


def test_docs_method_table_lists_the_registry() -> None:
    """docs/search.md's method table names exactly the registry's methods, in its order."""
    import re
    from pathlib import Path

    doc = Path(__file__).parents[2] / "docs" / "search.md"
    table = doc.read_text(encoding="utf-8").split("| method | what it does |", 1)[1]
    rows = re.findall(r"^\| `([a-z-]+)` \|", table.split("\n\n", 1)[0], flags=re.M)
    assert rows == list(REGISTRY)


def test_regression_config_values_are_range_checked() -> None:
    """A negative exploration constant, a temperature of 9 or a zero count is refused, naming
    the setting; 0 is accepted where the help says what it means."""
    import pytest

    from openberry.search import SearchError, make_config

    for method, overrides, name in [
        ("mctsr", {"c": "-5"}, "c"),
        ("mctsr", {"temperature": "9"}, "temperature"),
        ("sr-mcts", {"scorer_config.ebc_alpha": "1.5"}, "scorer_config.ebc_alpha"),
        ("beam", {"width": "0"}, "width"),
        ("step-mcts", {"c_puct": "nan"}, "c_puct"),
        ("best-of-n", {"top_p": "0"}, "top_p"),
    ]:
        with pytest.raises(SearchError, match=name):
            make_config(method, 4, overrides)
    assert make_config("step-mcts", 4, {"finish_tokens": "0"}).finish_tokens == 0
    assert make_config("meta-mcts", 4, {"finish_steps": "0", "noise": "0"}).finish_steps == 0
