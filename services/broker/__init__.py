"""Broker service: Tastytrade accounts, balances, positions, transactions and option chains (tastyplat.broker.v1)."""
