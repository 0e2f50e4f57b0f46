# cython: language_level=3
"""Placeholder for the pricing kernel (being written under issue 4)."""


def _placeholder() -> None:
    return None
