"""Broker domain: accounts, balances, positions, transactions, chains and model inputs, free of I/O."""
