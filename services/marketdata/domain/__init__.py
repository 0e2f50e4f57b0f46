"""Market data domain: symbols, feed events, the quote book, conflation, the simulator and model Greeks."""
