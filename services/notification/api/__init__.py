"""gRPC edge of the notification service: the servicer, conversions and the alert event decoder."""
