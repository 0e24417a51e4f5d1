import pytest

from nccldoctor.errors import UsageError
from nccldoctor.units import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8", 8),
        ("64K", 65536),
        ("1M", 1048576),
        ("1G", 1073741824),
        ("2k", 2048),
        ("16MB", 16 << 20),
        (" 4 M ", 4 << 20),
        ("1GiB", 1 << 30),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["12Q", "", "M", "-1", "1.5M", "abc", "1 2"])
def test_parse_size_rejects_with_the_flag_and_value(bad):
    with pytest.raises(UsageError, match=r"--max-bytes: .* is not a size"):
        parse_size(bad, "--max-bytes")


@pytest.mark.parametrize(
    ("size", "text"), [(8, "8"), (65536, "64K"), (3 << 20, "3M"), (1536, "1536"), (1 << 30, "1G")]
)
def test_format_size(size, text):
    assert format_size(size) == text
