"""Mock senders, one per channel: they "send" by recording what they were given.

A real sender would talk to an email/SMS/push gateway. These keep the last messages in memory
(per process) so a developer or a test can see what went out; in the dev profile the actor also
writes each one to the dev outbox table (`GET /notifications/dev/outbox`).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import ClassVar

import msgspec

from microcommerce.contracts.events import utc_now_iso

KEEP_LAST = 1000


class Outgoing(msgspec.Struct, frozen=True, kw_only=True):
    channel: str
    to: str
    subject: str
    body: str
    sentAt: str


class MockSender:
    channel: ClassVar[str] = ""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # shared by the service's worker threads
        self.sent: deque[Outgoing] = deque(maxlen=KEEP_LAST)

    def send(self, to: str, subject: str, body: str) -> Outgoing:
        message = Outgoing(channel=self.channel, to=to, subject=subject, body=body, sentAt=utc_now_iso())
        with self._lock:
            self.sent.append(message)
        return message


class EmailSender(MockSender):
    channel = "email"


class SmsSender(MockSender):
    channel = "sms"


class PushSender(MockSender):
    channel = "push"


def default_senders() -> dict[str, MockSender]:
    return {sender.channel: sender for sender in (EmailSender(), SmsSender(), PushSender())}


SENDERS = default_senders()
