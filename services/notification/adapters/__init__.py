"""Adapters of the notification service: storage, providers (Twilio, SMTP, FCM, stream), peers, identity."""
