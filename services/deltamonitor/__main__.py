"""``python -m services.deltamonitor``: the deltamonitor service alone on its port (its contract, until its issue lands)."""

import os

from services.platform.catalogue import serve_pending

serve_pending("deltamonitor", os.environ)
