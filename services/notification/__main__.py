"""``python -m services.notification``: the notification service alone on its port (its contract, until its issue lands)."""

import os

from services.platform.catalogue import serve_pending

serve_pending("notification", os.environ)
