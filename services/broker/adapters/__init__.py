"""Broker adapters: the Tastytrade Open API client, the paper broker, link stores and secret sealing."""
