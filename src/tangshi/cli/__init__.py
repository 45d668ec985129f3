"""The command line: argument parsing and dispatch, nothing else.

main (`tangshi` and its subcommands), experiment (`tangshi experiment`'s options), common (the
defaults and help texts every subcommand shares).

May import: every room. Nothing imports it but `tangshi.__main__` and the console script.
"""
