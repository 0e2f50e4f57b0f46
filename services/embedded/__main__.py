"""``python -m services.embedded``: the whole platform in one process (what ``make run`` starts)."""

import os

from services.embedded.runner import main

main(dict(os.environ))
