"""gRPC edge of the delta monitor: the servicer and the message conversions."""
