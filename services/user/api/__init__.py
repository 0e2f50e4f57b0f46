"""The gRPC edge of the user service: the servicer and the protobuf conversions (the only _pb2 users)."""
