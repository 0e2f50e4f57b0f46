"""Portfolio domain: lots, P&L, Greeks, scenarios and risk limits (no I/O)."""
