"""Reporting gRPC edge: servicer and conversions."""
