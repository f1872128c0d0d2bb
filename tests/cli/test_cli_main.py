import pytest

from importcheck import imported_roots
from openberry import __version__
from openberry.cli.main import main

HEAVY = ("torch", "transformers", "datasets", "pyarrow", "pandas", "math_verify", "sympy", "pebble")


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("data", "grade"):
        assert command in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: berry" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


def test_cli_start_imports_no_heavy_dependency():
    """`berry --help`, `berry data` and `berry grade` must start fast: building the whole parser
    imports none of torch, transformers, datasets, math-verify or sympy."""
    code = "from openberry.cli.main import build_parser; build_parser()"
    assert imported_roots(code, HEAVY) == []
