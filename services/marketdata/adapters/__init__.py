"""Adapters of the market data ports: DXLink, simulator feed, PostgreSQL history, quote tokens."""
