import pytest

from nccldoctor.errors import UsageError
from nccldoctor.units import format_bytes, format_size, parse_size, three_digits


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


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (8, "8 B"),
        (1023, "1023 B"),
        (65536, "64 KiB"),
        (1536, "1.5 KiB"),
        (1882112, "1.79 MiB"),  # the DDP benchmark's tiny model's gradients
        (25 << 20, "25 MiB"),
        (3 << 30, "3 GiB"),
    ],
)
def test_format_bytes_writes_three_significant_digits_in_binary_units(amount, text):
    assert format_bytes(amount) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0000164, "0.0000164"), (12.34, "12.3"), (0.587, "0.587"), (64.0, "64"), (1234.6, "1235")],
)
def test_three_digits_never_writes_an_exponent(value, text):
    assert three_digits(value) == text
