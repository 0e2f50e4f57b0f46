"""The gRPC edge of the market data service: the servicer and protobuf conversion."""
