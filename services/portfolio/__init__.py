"""The portfolio service (tastyplat.portfolio.v1)."""
