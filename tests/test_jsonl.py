import pytest

from openberry.jsonl import JSONLError, iter_jsonl, write_jsonl


def test_round_trip_skips_blank_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    assert write_jsonl(path, [{"a": 1}, {"b": "é"}]) == 2
    path.write_text(path.read_text() + "\n\n")
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (2, {"b": "é"})]


def test_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(JSONLError, match=r"bad\.jsonl:2: not valid JSON"):
        list(iter_jsonl(path))
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(JSONLError, match=r"bad\.jsonl:2: expected a JSON object, got list"):
        list(iter_jsonl(path))
    with pytest.raises(JSONLError, match="no such file"):
        list(iter_jsonl(tmp_path / "missing.jsonl"))


def test_write_failure_leaves_no_partial_file(tmp_path):
    """Regression: a row generator that raised half-way left FILE.tmp behind."""

    def rows():
        yield {"a": 1}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_jsonl(tmp_path / "out.jsonl", rows())
    assert list(tmp_path.iterdir()) == []


def test_non_utf8_line_is_named(tmp_path):
    """Regression: a non-UTF-8 byte raised UnicodeDecodeError (a traceback in `berry grade`)."""
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "caf\xe9"}\n')
    with pytest.raises(JSONLError, match=r"latin1\.jsonl:2: not valid UTF-8 \(byte 0xe9"):
        list(iter_jsonl(path))


def test_leading_byte_order_mark_is_ignored(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n')
    assert list(iter_jsonl(path)) == [(1, {"a": 1})]
