"""The reporting service (tastyplat.reporting.v1)."""
