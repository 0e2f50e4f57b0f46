"""The gRPC edge of the calculator: the servicer, and conversions between wire messages and domain values."""
