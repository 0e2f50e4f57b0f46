"""The platform's services, one package each, and their shared runtime (services.platform)."""
