"""The deltamonitor service (tastyplat.deltamonitor.v1)."""
