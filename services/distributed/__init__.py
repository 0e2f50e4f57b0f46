"""Distributed mode on one machine: every service in its own process, the machine's backends, Envoy in front."""
