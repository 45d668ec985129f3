"""The `tangshi` command line: parse the arguments (`cli.parsers`), run the subcommand's handler
(`cli.commands`), and turn any TangshiError into one line on stderr and exit status 2."""

from __future__ import annotations

import sys

from tangshi.cli.parsers import build_parser
from tangshi.errors import TangshiError, one_line
from tangshi.files import describe_oserror
from tangshi.text import unicode_problem

__all__ = ["build_parser", "main"]


def check_argv(argv: list[str]) -> None:
    """Every argument is text: bytes that are not UTF-8 (which Python passes on as lone
    surrogates) are refused here, where they enter, naming the option they belong to."""
    for i, arg in enumerate(argv):
        why = unicode_problem(arg)
        if why is not None:
            flag = (
                arg.split("=", 1)[0]
                if arg.startswith("--")
                else (argv[i - 1] if i and argv[i - 1].startswith("-") else f"argument {i + 1}")
            )
            raise TangshiError(f"{flag}: {why}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        check_argv(argv)
    except TangshiError as e:
        print(f"tangshi: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv  # the command as typed, for report headers
    try:
        return args.func(args)
    except TangshiError as e:
        print(f"tangshi: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 1
    except OSError as e:  # the safety net: every writer names its path itself (outputs.oserrors_named)
        print(f"tangshi: error: {describe_oserror(e, verb=None)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("tangshi: error: out of memory; ask for less (a smaller --n, --batch-size or model)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tangshi: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
