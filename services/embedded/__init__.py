"""Embedded mode: every service on one grpc.aio server, embedded PostgreSQL, Envoy in front."""
