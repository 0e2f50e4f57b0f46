"""Adapters of the delta monitor: storage, bus, peers, pricing and the market calendar."""
