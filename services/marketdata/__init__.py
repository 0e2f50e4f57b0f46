"""The market data service: quotes and Greeks from DXLink or the simulator, streams, history (tastyplat.marketdata.v1)."""
