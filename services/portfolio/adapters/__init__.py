"""Portfolio adapters: broker and market data peers, stores, alert publishing, identity."""
