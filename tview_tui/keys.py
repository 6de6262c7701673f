"""Key lists typed by people: '1, 2 5-7' -> [1, 2, 5, 6, 7], sized before anything is expanded."""

from __future__ import annotations

MAX_KEYS = 100_000


class TooManyKeys(ValueError):
    """More keys than allowed at a time (found before building the list)."""


def parse_keys(text: str, limit: int = MAX_KEYS) -> list[int]:
    """Integer keys and inclusive ranges separated by commas or spaces. Raises ValueError for
    anything else and TooManyKeys when there would be more than ``limit`` keys: ranges are
    measured first, so '1-100000000' is refused at once, without a list of a hundred million."""
    parts: list[tuple[int, int]] = []
    total = 0
    for part in text.replace(",", " ").split():
        low, dash, high = part.partition("-")
        if dash and low and high:
            first, last = int(low), int(high)
        else:
            first = last = int(part)
        if last < first:
            raise ValueError(f"empty range {part}")
        total += last - first + 1
        if total > limit:
            raise TooManyKeys(f"more than {limit:,} keys at a time")
        parts.append((first, last))
    return [key for first, last in parts for key in range(first, last + 1)]


def format_keys(keys: tuple[int, ...] | list[int]) -> str:
    """The inverse of parse_keys, compact: [1, 2, 3, 7] -> '1-3, 7' (every key, in order given)."""
    runs: list[list[int]] = []
    for key in keys:
        if runs and key == runs[-1][1] + 1:
            runs[-1][1] = key
        else:
            runs.append([key, key])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
