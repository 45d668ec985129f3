"""One exception type for every problem a user can cause.

The CLI catches `TangshiError` and prints its message on one line, with no
traceback and a non-zero exit (whisper / pytorch-examples style: fail early, in
the user's words).
"""

import json
import math
from dataclasses import field


class TangshiError(Exception):
    """A user-facing error: bad input, a missing file, an impossible request."""


def check_number(
    option: str, value, lo: float, hi: float, *, integer: bool = False, lo_open: bool = False, hi_open: bool = False
) -> None:
    """Raise one TangshiError naming `option` unless `value` is a finite number in the range
    (lo, hi bounds closed unless said open; `integer`: a whole number)."""
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if (
        isinstance(value, bool)
        or not ok_type
        or (not integer and not math.isfinite(value))
        or value < lo
        or value > hi
        or (lo_open and value == lo)
        or (hi_open and value == hi)
    ):
        kind = "a whole number" if integer else "a finite number"

        def show(x):
            return str(int(x)) if float(x).is_integer() else f"{x:g}"

        lo_s = f"> {show(lo)}" if lo_open else f">= {show(lo)}"
        hi_s = f"< {show(hi)}" if hi_open else f"<= {show(hi)}"
        raise TangshiError(f"{option} must be {kind} {lo_s} and {hi_s}, got {value}")


def read_text(path) -> str:
    """A text file a user gave or tangshi wrote, read as UTF-8 (a BOM ignored), every way of failing
    as one TangshiError naming the file: missing, unreadable, not UTF-8."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read()
    except FileNotFoundError:
        raise TangshiError(f"{path} is missing") from None
    except UnicodeDecodeError:
        raise TangshiError(f"{path} is not UTF-8 text") from None
    except OSError as e:
        raise TangshiError(f"cannot read {path}: {e.strerror}") from None


def read_json(path, what: str = "JSON"):
    """A JSON file a user gave or tangshi wrote, every way of failing as one TangshiError naming
    the file (missing, unreadable, not UTF-8, malformed, nested too deeply). A BOM is ignored."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise TangshiError(f"malformed {what} in {path}: line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise TangshiError(f"{path} is nested too deeply to be {what}") from None


def option(default, help: str, **meta):
    """A config dataclass field that is also a command-line option: its help (and choices) in the
    field's metadata, from which cli.config_options builds the option."""
    return field(default=default, metadata={"help": help, **meta})


MAX_MESSAGE = 400  # characters of an error message shown; a message that quotes a huge input is cut


def one_line(message: str) -> str:
    """An error message as one line of bounded length: newlines become spaces, and the middle of
    an over-long message (one quoting a huge input) is cut."""
    text = " ".join(str(message).split())
    if len(text) <= MAX_MESSAGE:
        return text
    half = MAX_MESSAGE // 2
    return f"{text[:half]} … ({len(text) - 2 * half} characters cut) … {text[-half:]}"
