"""SMTP channel: one email per alert (plain text + HTML), over STARTTLS, implicit TLS or (local relays) none.

TLS verifies the server by default (``ssl.create_default_context()``: CERT_REQUIRED and
hostname check); pass ``ssl_context`` to trust a private CA. A password is never sent
without TLS (``security="none"`` with credentials is a ConfigError) and never appears in
an error, a repr or a log.

Failure classes, as the outbox needs them:

- retryable: connection refused or reset, timeouts, DNS failures, the server hanging up
  (``SMTPServerDisconnected``), any SMTP 4xx reply (greylisting, "try again later");
- final: authentication rejected (535), 5xx replies (recipient or sender refused, TLS
  required), certificate verification failure, STARTTLS not offered, TLS protocol errors.

Each message carries a ``Message-ID`` derived from the idempotency key, so a retry of the
same alert has the same id and a mail client can fold duplicates.
"""

from __future__ import annotations

import hashlib
import math
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Final, Literal

from monitor.alerts.channels import DeliveryError, redact
from monitor.alerts.message import Message, one_line
from monitor.errors import ConfigError

Security = Literal["starttls", "ssl", "none"]
SECURITY_MODES: Final = ("starttls", "ssl", "none")

_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS_RE: Final = re.compile(rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+")
_HOST_RE: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+")


def parse_addresses(destination: str) -> list[str]:
    """The addresses in a comma-separated destination; ConfigError names the first bad one."""
    addresses = [part.strip() for part in destination.split(",")]
    if not destination.strip():
        raise ConfigError("email destination is empty: expected one or more addresses separated by commas")
    for address in addresses:
        if not _ADDRESS_RE.fullmatch(address):
            shown = f"{address!r}" if address else "an empty entry"
            raise ConfigError(
                f"email destination {destination!r}: {shown} is not an email address (expected local@domain.tld, "
                "several separated by commas)"
            )
    return addresses


class EmailChannel:
    """Sends each alert as one email through an SMTP server."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        security: Security,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if not name:
            raise ConfigError("email channel name is empty: give every channel a name")
        where = f"channel {name!r}"
        if not host or not _HOST_RE.fullmatch(host):
            raise ConfigError(f"{where}: SMTP host {host!r} is not a host name or IP address")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"{where}: SMTP port {port!r} is out of range; expected 1-65535 (587, 465 or 25)")
        if security not in SECURITY_MODES:
            raise ConfigError(f"{where}: security {security!r} is not one of {', '.join(SECURITY_MODES)}")
        if not _ADDRESS_RE.fullmatch(sender):
            raise ConfigError(f"{where}: sender {sender!r} is not an email address")
        if (username is None) != (password is None):
            raise ConfigError(f"{where}: give both an SMTP username and a password, or neither")
        if username is not None and security == "none":
            raise ConfigError(f"{where}: refusing to send the SMTP password without TLS; use security starttls or ssl")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ConfigError(f"{where}: SMTP timeout must be a positive number of seconds, got {timeout}")
        self.name = name
        self.host = host
        self.port = port
        self.security: Security = security
        self.sender = sender
        self.username = username
        self.timeout = timeout
        self.local_hostname = local_hostname
        self._password = password
        self._context = ssl_context if ssl_context is not None else ssl.create_default_context()

    def __repr__(self) -> str:
        login = "" if self.username is None else f", username={self.username!r}, password=<secret>"
        return (
            f"EmailChannel(name={self.name!r}, host={self.host!r}, port={self.port}, "
            f"security={self.security!r}, sender={self.sender!r}{login})"
        )

    def validate_destination(self, destination: str) -> None:
        parse_addresses(destination)

    def build(self, message: Message, recipients: list[str]) -> EmailMessage:
        """The email for ``message``: the headline as subject (what a phone's preview shows), the
        body (not repeating it) as plain text with an HTML alternative holding the links."""
        mail = EmailMessage()
        mail["Subject"] = message.headline
        mail["From"] = self.sender
        mail["To"] = ", ".join(recipients)
        mail["Date"] = formatdate(usegmt=True)
        digest = hashlib.sha256(message.key.encode()).hexdigest()[:32]
        mail["Message-ID"] = f"<{digest}.liqmon@{self.sender.rpartition('@')[2]}>"
        mail["X-Liqmon-Key"] = one_line(message.key)
        mail.set_content(message.body_text() or one_line(message.title))
        mail.add_alternative(message.email_html(), subtype="html")
        return mail

    def send(self, message: Message, destination: str) -> None:
        try:
            recipients = parse_addresses(destination)
        except ConfigError as exc:
            raise DeliveryError(f"channel {self.name!r}: {exc}", retryable=False, kind="config") from None
        mail = self.build(message, recipients)
        server = f"SMTP {self.host}:{self.port} ({self.security})"
        try:
            refused = self._deliver(mail, recipients)
        except smtplib.SMTPAuthenticationError as exc:
            temporary = 400 <= exc.smtp_code < 500
            raise self._error(
                f"{server} rejected the login of {self.username!r}: {_reply(exc)}"
                + ("" if temporary else "; check the username and password"),
                temporary,
                "auth",
            ) from None  # nothing of the login exchange is kept with the error
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{addr}: {code} {_text(msg)}" for addr, (code, msg) in exc.recipients.items())
            raise self._error(
                f"{server} refused every recipient ({detail})", all(400 <= c < 500 for c in codes), "recipients"
            ) from exc
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, HELO, connect reply
            temporary = 400 <= exc.smtp_code < 500
            raise self._error(f"{server} answered {_reply(exc)}", temporary, f"smtp_{exc.smtp_code}") from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise self._error(f"{server} closed the connection ({exc})", True) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise self._error(f"{server}: {exc} (check the security setting)", False) from exc
        except smtplib.SMTPException as exc:
            raise self._error(f"{server} failed: {exc}", False) from exc
        except ssl.SSLCertVerificationError as exc:
            raise self._error(
                f"{server}: the server's TLS certificate failed verification ({exc.verify_message}); "
                "fix the certificate, or trust its CA",
                False,
                "tls",
            ) from exc
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError) as exc:
            raise self._error(f"{server}: the connection dropped during TLS ({exc.reason or exc})", True) from exc
        except ssl.SSLError as exc:
            raise self._error(
                f"{server}: TLS failed ({exc.reason or exc}); check the port and the security setting", False, "tls"
            ) from exc
        except TimeoutError as exc:
            raise self._error(f"{server} timed out after {self.timeout:g} s", True) from exc
        except OSError as exc:  # refused, reset, unreachable, DNS
            raise self._error(f"{server} unreachable: {exc.strerror or exc}", True) from exc
        if refused:
            # Delivered to the others: a retry would send them duplicates, so this is final.
            detail = "; ".join(f"{addr}: {code} {_text(msg)}" for addr, (code, msg) in refused.items())
            raise self._error(
                f"{server} delivered the message but refused some recipients ({detail})", False, "recipients"
            )

    def _deliver(self, mail: EmailMessage, recipients: list[str]) -> dict[str, tuple[int, bytes]]:
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout, context=self._context
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.security == "starttls":
                smtp.starttls(context=self._context)
                smtp.ehlo()
            if self.username is not None and self._password is not None:
                smtp.login(self.username, self._password)
            refused = smtp.send_message(mail, from_addr=self.sender, to_addrs=recipients)
        except BaseException:
            smtp.close()
            raise
        try:
            smtp.quit()  # the message is accepted: a failure to say goodbye is not a failure to deliver
        except (smtplib.SMTPException, OSError):
            smtp.close()
        return refused

    def _error(self, text: str, retryable: bool, kind: str = "") -> DeliveryError:
        secrets = (self._password,) if self._password else ()
        return DeliveryError(redact(f"channel {self.name!r}: {text}", secrets), retryable=retryable, kind=kind)


def _text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return one_line(text)[:200]


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}"
