"""Envoy gateway: config generated from the descriptor set, process control, development certificates."""
