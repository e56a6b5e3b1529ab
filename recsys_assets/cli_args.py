"""The argument types of ``recsys`` (cli.py): each refuses a bad value in one line, and ``--help`` names the range.

Each type is an argparse ``type``, so a bad value stops the command before it starts, as
``recsys serve: error: argument --port: must be from 1 to 65535, got 99999 (see recsys serve --help)``.
"""

import argparse
import math
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``recsys serve: error: argument --port: ...``), no usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def whole(minimum: int, maximum: int | None = None):
    """An argparse type: a whole number within ``minimum``..``maximum``, else a one-line error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0 (nan, inf, 0 and negatives are refused)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value


PORTS = (1, 65535)
MIN_SAMPLE_RATINGS = 100  # a smaller sample is too small to split, train and judge a model on
