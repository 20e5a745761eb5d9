"""What an SMTP failure means: retry, give up, and whether the address is suppressed.

4xx answers and connection failures are transient. A 5xx is permanent for the
notification; only a recipient failure — enhanced status 5.1.x (bad mailbox or address)
or 5.2.x (mailbox status: full, disabled) — suppresses the address. Policy (5.7.x) and
server (5.3.x, 5.5.x) refusals are about the message or us, not the address.

A failure of the connection itself (refused, dropped, timed out, or ``421``: the server is
closing the channel) is about the server, not the message: the drain stops there and the
messages behind it wait with it (``SmtpVerdict.server_down``).
"""

from __future__ import annotations

import re
import smtplib
from dataclasses import dataclass

ENHANCED_STATUS = re.compile(rb"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# Refusals of the session, not of a message (a bad greeting, EHLO, AUTH): retried, whatever the code.
SERVER_REFUSED = (smtplib.SMTPConnectError, smtplib.SMTPHeloError, smtplib.SMTPAuthenticationError)
CLOSING_CODE = 421  # "service not available, closing transmission channel"


@dataclass(frozen=True)
class SmtpVerdict:
    permanent: bool
    suppress: bool
    detail: str
    server_down: bool = False


def _classify(code: int, text: bytes) -> SmtpVerdict:
    detail = f"{code} {text.decode('utf-8', 'replace')}".strip()
    if code < 500:
        return SmtpVerdict(permanent=False, suppress=False, detail=detail, server_down=code == CLOSING_CODE)
    enhanced = ENHANCED_STATUS.search(text)
    recipient = enhanced is not None and enhanced.group(1) == b"5" and enhanced.group(2) in (b"1", b"2")
    return SmtpVerdict(permanent=True, suppress=recipient, detail=detail)


def _server_down(error: BaseException) -> SmtpVerdict:
    return SmtpVerdict(permanent=False, suppress=False, detail=f"{type(error).__name__}: {error}", server_down=True)


def smtp_verdict(error: BaseException) -> SmtpVerdict:
    if isinstance(error, SERVER_REFUSED):
        return _server_down(error)
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(error.recipients.values()))
        return _classify(int(code), text if isinstance(text, bytes) else str(text).encode())
    if isinstance(error, smtplib.SMTPResponseException):
        text = error.smtp_error if isinstance(error.smtp_error, bytes) else str(error.smtp_error).encode()
        return _classify(int(error.smtp_code), text)
    return _server_down(error)  # SMTPServerDisconnected, refused, reset, timed out
