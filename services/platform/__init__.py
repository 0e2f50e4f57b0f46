"""Shared gRPC runtime used by every service: bootstrap, interceptors, errors, settings, logging, clock, peers.

Domain code imports only ``services.platform.errors`` and ``services.platform.clock`` (neither touches grpc);
``__main__`` modules and the embedded runner use ``server``, ``settings`` and ``peers``.
"""
