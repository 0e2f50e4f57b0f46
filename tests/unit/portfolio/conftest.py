"""Make the history builders importable from the portfolio unit tests."""

import sys
import pathlib

sys.path.insert(0, str(pathlib.Path(__file__).parent))
