"""One exception type for every problem a user can cause.

The CLI catches `TangshiError` and prints its message on one line, with no
traceback and a non-zero exit (whisper / pytorch-examples style: fail early, in
the user's words).
"""


class TangshiError(Exception):
    """A user-facing error: bad input, a missing file, an impossible request."""
