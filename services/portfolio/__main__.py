"""``python -m services.portfolio``: the portfolio service alone on its port (its contract, until its issue lands)."""

import os

from services.platform.catalogue import serve_pending

serve_pending("portfolio", os.environ)
