"""``python -m services.distributed``: every service in its own process with Envoy in front (``make run-distributed``)."""

import os

from services.distributed.launcher import main

main(dict(os.environ))
