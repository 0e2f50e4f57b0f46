"""``python -m services.reporting``: the reporting service alone on its port (its contract, until its issue lands)."""

import os

from services.platform.catalogue import serve_pending

serve_pending("reporting", os.environ)
