"""gRPC edge of the broker service: the servicer and the domain <-> protobuf conversions."""
