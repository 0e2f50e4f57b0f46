"""Domain of the notification service: channels, deliveries and their state machine, planning, quiet hours."""
