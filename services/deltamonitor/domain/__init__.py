"""Domain of the delta monitor: watches, bands, the alert state machine and the re-pricing book (no I/O)."""
