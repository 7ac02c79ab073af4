"""How does _pickle.c read a text opcode's line and number, where pickle.py reads it otherwise?"""

from __future__ import annotations

import pickle
import re


class CError(pickle.UnpicklingError):
    """Where _pickle.c stops and pickle.py would not."""


# glibc strtol(s, &end, 0): optional whitespace and sign, then 0x/0X hex, 0 octal or decimal.
_STRTOL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(?:(0[xX])([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))")
_C_LONG_MIN, _C_LONG_MAX = -(1 << 63), (1 << 63) - 1
# PyOS_string_to_double: no leading whitespace, no underscores.
_C_FLOAT = re.compile(
    rb"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)", re.I
)


def _c_string(line: bytes) -> bytes:
    """A text opcode's line as _pickle.c's C string functions see it: up to the first NUL.
    A line shorter than two bytes (no argument before the newline) is truncation."""
    if len(line) < 2:
        raise CError("pickle data was truncated")
    nul = line.find(b"\0")
    return line if nul < 0 else line[:nul]


def c_int(line: bytes) -> int:
    """_pickle.c load_int: strtol base 0, else PyLong_FromString(s, NULL, 0)."""
    text = _c_string(line)
    match = _STRTOL.match(text)
    value, end = 0, 0  # no digits: strtol returns 0 with its end at the start
    if match:
        sign, hexa, hex_digits, octal, decimal = match.groups()
        if hexa:
            value = int(hex_digits, 16)
        elif octal:
            value = int(octal, 8)
        else:
            value = int(decimal)
        value, end = (-value if sign == b"-" else value), match.end()
    if _C_LONG_MIN <= value <= _C_LONG_MAX and text[end : end + 1] in (b"\n", b""):
        return value
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError("could not convert string to int") from None


def c_long(line: bytes) -> int:
    """_pickle.c load_long: a trailing 'L' dropped, then PyLong_FromString(s, NULL, 0)."""
    text = _c_string(line)
    return int(_c_string(line[:-2]) if line[-2:-1] == b"L" else text, 0)


def c_float(line: bytes) -> float:
    """_pickle.c load_float: PyOS_string_to_double, then only a newline or NUL may follow."""
    text = _c_string(line)
    match = _C_FLOAT.match(text)
    if not match or text[match.end() : match.end() + 1] not in (b"\n", b""):
        raise ValueError("could not convert string to float")
    return float(match.group())


def c_index(line: bytes) -> int:
    """PUT/GET: PyLong_FromString(s, NULL, 10) over the NUL-terminated line."""
    return int(_c_string(line), 10)
