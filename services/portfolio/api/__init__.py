"""Portfolio gRPC edge: servicer and conversions."""
