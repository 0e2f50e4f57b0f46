"""The notification service (tastyplat.notification.v1)."""
