"""Delivery providers: SMS through the twilio SDK, e-mail over SMTP (aiosmtplib), push through firebase-admin
(FCM HTTP v1), and the stream.

What the SDKs do on their own, and how each adapter copes:

- twilio: no retries and no idempotency key on ``messages.create``. Every body carries a short reference tag;
  an attempt that may have landed (5xx, timeout, reset) is reconciled before resending by listing the
  messages sent to the number since the attempt began and looking for the tag.
- SMTP: a 5xx reply is permanent, a 4xx or a broken connection transient. The ``Message-ID`` is derived from
  the alert id, so the rare resend after an ambiguous failure is recognisable as the same message; SMTP has no
  log to reconcile against.
- firebase-admin: its HTTP session retries a POST on 500/503 by itself (up to 4 times), so one ``send`` could
  push several times with no way to tell. The adapter mounts a retry-free HTTP adapter on that session, making
  one ``send`` one POST and this service's backoff the only retry policy, and sets the collapse key (Android)
  and ``apns-collapse-id`` to the alert id so a push that did land twice replaces itself on the device.
  ``UNREGISTERED`` disables the channel.
"""

from __future__ import annotations

import asyncio
import email.utils
import html
import logging
import warnings
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

from services.notification.domain.model import ChannelKind, Delivery
from services.notification.ports import ProviderError

__all__ = ["FcmPushProvider", "SmtpEmailProvider", "StreamProvider", "TwilioSmsProvider", "sms_body"]

log = logging.getLogger("tastyplat.notification.providers")

_SMS_LIMIT = 600


def sms_body(delivery: Delivery) -> str:
    """The SMS text: the title and as much of the message as fits, ending with the reference tag."""
    tag = f" [ref {delivery.reference}]"
    text = delivery.body if delivery.test else f"{delivery.title}\n{delivery.body}"
    room = _SMS_LIMIT - len(tag)
    if len(text) > room:
        text = text[: room - 1] + "…"
    return text + tag


class TwilioSmsProvider:
    """SMS through the official twilio SDK (``client.messages.create``), run in a worker thread."""

    kind = ChannelKind.SMS

    def __init__(self, client: Any, *, from_number: str = "", messaging_service_sid: str = "") -> None:
        """Use a ``twilio.rest.Client`` (its ``api.base_url`` or ``http_client`` may point at a fake).

        Raises:
            ValueError: neither a sender number nor a messaging service is configured.
        """
        if not (from_number or messaging_service_sid):
            raise ValueError("a Twilio sender (from number or messaging service SID) is required")
        self._client = client
        self._from = from_number
        self._service = messaging_service_sid

    def _create(self, to: str, body: str) -> str:
        kwargs: dict[str, Any] = {"to": to, "body": body}
        if self._service:
            kwargs["messaging_service_sid"] = self._service
        else:
            kwargs["from_"] = self._from
        return str(self._client.messages.create(**kwargs).sid)

    async def send(self, delivery: Delivery) -> str:
        """Create one message."""
        from twilio.base.exceptions import TwilioRestException

        try:
            return await asyncio.to_thread(self._create, delivery.address, sms_body(delivery))
        except TwilioRestException as error:
            status = int(error.status or 0)
            detail = f"twilio {status}/{error.code}: {error.msg}"
            if status == 429:
                raise ProviderError(detail) from None
            if status >= 500:
                raise ProviderError(detail, ambiguous=True) from None
            # 4xx: invalid or unsubscribed number, bad sender... retrying the same request cannot help.
            raise ProviderError(detail, permanent=True) from None
        except Exception as error:  # noqa: BLE001  # requests' connection and read errors: the POST may have landed
            raise ProviderError(f"twilio request failed: {error!r}", ambiguous=True) from None

    def _find(self, to: str, tag: str, since: Any) -> str | None:
        for message in self._client.messages.list(to=to, date_sent_after=since, limit=100):
            if tag in (message.body or ""):
                return str(message.sid)
        return None

    async def reconcile(self, delivery: Delivery) -> str | None:
        """Look for the tagged message in Twilio's log of messages to the number since the attempt began."""
        since = (delivery.attempt_started or delivery.create_time) - timedelta(days=1)
        return await asyncio.to_thread(self._find, delivery.address, f"[ref {delivery.reference}]", since)


class SmtpEmailProvider:
    """E-mail over SMTP with aiosmtplib: a plain-text and an HTML part, ``Message-ID`` from the alert id."""

    kind = ChannelKind.EMAIL

    def __init__(
        self,
        *,
        hostname: str,
        port: int,
        sender: str,
        username: str = "",
        password: str = "",
        use_tls: bool = False,
        start_tls: bool | None = None,
        timeout: float = 20.0,
        domain: str = "tastyplat",
    ) -> None:
        """Configure the relay."""
        self._hostname = hostname
        self._port = port
        self._sender = sender
        self._username = username or None
        self._password = password or None
        self._use_tls = use_tls
        self._start_tls = start_tls
        self._timeout = timeout
        self._domain = domain

    def message_id(self, delivery: Delivery) -> str:
        """``<alert id@domain>`` (the delivery id for tests, which have no alert)."""
        return f"<{delivery.alert_id or 'test-' + delivery.delivery_id}@{self._domain}>"

    def build(self, delivery: Delivery) -> EmailMessage:
        """The message: headers, text body and HTML alternative."""
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = delivery.address
        message["Subject"] = delivery.title.replace("\n", " ")[:200]
        message["Message-ID"] = self.message_id(delivery)
        message["Date"] = email.utils.format_datetime(delivery.create_time)
        if delivery.alert_id:
            message["X-Tastyplat-Alert-Id"] = delivery.alert_id
        message.set_content(f"{delivery.title}\n\n{delivery.body}\n")
        body = html.escape(delivery.body).replace("\n", "<br>")
        message.add_alternative(
            f"<html><body><h2>{html.escape(delivery.title)}</h2><p>{body}</p></body></html>", subtype="html"
        )
        return message

    async def send(self, delivery: Delivery) -> str:
        """Hand the message to the relay."""
        import aiosmtplib

        message = self.build(delivery)
        try:
            await aiosmtplib.send(
                message,
                hostname=self._hostname,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._use_tls,
                start_tls=self._start_tls,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            raise ProviderError(f"recipient refused: {error}", permanent=True) from None
        except aiosmtplib.SMTPResponseException as error:
            permanent = 500 <= error.code < 600
            raise ProviderError(f"smtp {error.code}: {error.message}", permanent=permanent) from None
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError, ConnectionRefusedError) as error:
            raise ProviderError(f"smtp connection failed: {error}") from None
        except (aiosmtplib.SMTPException, OSError) as error:
            raise ProviderError(f"smtp failed: {error!r}", ambiguous=True) from None
        return str(message["Message-ID"])

    async def reconcile(self, delivery: Delivery) -> str | None:
        """SMTP keeps no log to ask: None (a resend carries the same Message-ID)."""
        return None


class FcmPushProvider:
    """Push through firebase-admin ``messaging.send`` (FCM HTTP v1), one POST per call."""

    kind = ChannelKind.PUSH

    def __init__(self, app: Any, *, endpoint: str | None = None) -> None:
        """Use an initialised ``firebase_admin.App``.

        Args:
            app: The Firebase app (its credential and project id).
            endpoint: Base URL replacing ``https://fcm.googleapis.com`` (a local fake in tests). firebase-admin
                has no setting for it; the service's private URL is overridden here, and only here, which is
                why firebase-admin is pinned to an exact version.
        """
        import requests.adapters
        from firebase_admin import messaging
        from urllib3.util import retry

        self._app = app
        service = messaging._get_messaging_service(app)
        if endpoint is not None:
            service._fcm_url = f"{endpoint.rstrip('/')}/v1/projects/{app.project_id}/messages:send"
        no_retry = requests.adapters.HTTPAdapter(
            max_retries=retry.Retry(total=0, connect=0, read=0, status=0, redirect=0, raise_on_status=False)
        )
        for prefix in ("http://", "https://", "https://fcm.googleapis.com"):
            service._client.session.mount(prefix, no_retry)
        self._messaging = messaging

    def _message(self, delivery: Delivery) -> Any:
        m = self._messaging
        collapse = delivery.alert_id or delivery.delivery_id
        data = {"alert_id": delivery.alert_id, "delivery_id": delivery.delivery_id}
        # The platform stores FCM registration tokens, which FCM v1 takes as `token`; firebase-admin 7.7 flags
        # the argument as deprecated in favour of installation ids (`fid`), a different identifier.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return m.Message(
                token=delivery.address,
                notification=m.Notification(title=delivery.title[:200], body=delivery.body[:1000]),
                data=data,
                android=m.AndroidConfig(collapse_key=collapse, priority="high"),
                apns=m.APNSConfig(headers={"apns-collapse-id": collapse[:64]}),
            )

    def _send(self, delivery: Delivery) -> str:
        return str(self._messaging.send(self._message(delivery), app=self._app))

    async def send(self, delivery: Delivery) -> str:
        """Send one push."""
        from firebase_admin import exceptions, messaging

        try:
            return await asyncio.to_thread(self._send, delivery)
        except messaging.UnregisteredError as error:
            raise ProviderError(f"fcm UNREGISTERED: {error}", permanent=True, disable_channel=True) from None
        except messaging.QuotaExceededError as error:
            # FCM asks for at least a minute before retrying a quota error.
            raise ProviderError(f"fcm QUOTA_EXCEEDED: {error}", retry_after=60.0) from None
        except (exceptions.InvalidArgumentError, messaging.SenderIdMismatchError, exceptions.PermissionDeniedError,
                exceptions.UnauthenticatedError, messaging.ThirdPartyAuthError) as error:
            raise ProviderError(f"fcm rejected the message: {error}", permanent=True) from None
        except exceptions.FirebaseError as error:
            ambiguous = isinstance(error, (exceptions.InternalError, exceptions.UnavailableError, exceptions.DeadlineExceededError))
            raise ProviderError(f"fcm failed: {error}", ambiguous=ambiguous) from None
        except Exception as error:  # noqa: BLE001  # transport errors: the POST may have landed
            raise ProviderError(f"fcm request failed: {error!r}", ambiguous=True) from None

    async def reconcile(self, delivery: Delivery) -> str | None:
        """FCM has no message log to ask: None (a resend carries the same collapse key)."""
        return None


class StreamProvider:
    """The StreamAlerts stream of the delta monitor carries the alert itself; the delivery records it."""

    kind = ChannelKind.STREAM

    async def send(self, delivery: Delivery) -> str:
        """Nothing to hand over: the stream subscriber already has the alert."""
        return f"stream:{delivery.alert_id or delivery.delivery_id}"

    async def reconcile(self, delivery: Delivery) -> str | None:
        """Always delivered."""
        return f"stream:{delivery.alert_id or delivery.delivery_id}"
