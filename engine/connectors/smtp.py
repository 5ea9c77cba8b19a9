"""`smtp/SendEmail`: SpiffArena's e-mail command, sent with smtplib.

Parameters (SpiffArena's names): `smtp_host`, `smtp_port` (25), `smtp_user` and
`smtp_password` (log in when a user is given; the password names a secret), `smtp_starttls`
(false), `email_from`, `email_to`, `email_cc`, `email_bcc` (a string, comma-separated, or a
list), `email_reply_to`, `email_subject`, `email_body` (text) and `email_body_html`.
The result is `{"sent": true, "recipients": [...], "message_id": "<...>"}`.

A log-in is refused (the BPMN error `SMTP_INSECURE_LOGIN`, before the password is sent) on a
connection without TLS to any host but this machine's loopback: set `smtp_starttls`.
`BATON_SMTP_LOGIN_IN_CLEAR=never` refuses it on loopback too (a relay on the same machine
that should be reached with TLS all the same); the default `loopback` allows it there.

The server's address passes the outbound policy (outbound.py) when the connection is opened,
so a host name cannot lead to Baton's own database or broker. A refused connection, a
timeout and a 4xx reply are transient (retried); a refused log-in, refused recipients and
other 5xx replies are BPMN errors `SMTP_AUTH`, `SMTP_RECIPIENTS`, `SMTP_<code>`.
"""

import ipaddress
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from django.conf import settings

from . import BusinessError, ConnectorCall, TransientError, connector
from .outbound import checked_addresses

DEFAULT_TIMEOUT_SECONDS = 30.0


class _PolicySMTP(smtplib.SMTP):
    """An SMTP client whose connection goes only to an address the outbound policy checked;
    STARTTLS still verifies the certificate against the host name."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        address = checked_addresses(host, port)[0]
        return socket.create_connection((address, port), timeout, self.source_address)


def _refuse_login_in_clear(server: smtplib.SMTP, host: str) -> None:
    """Credentials cross the network only encrypted: without STARTTLS, only to loopback."""
    if isinstance(server.sock, ssl.SSLSocket):
        return
    peer = ipaddress.ip_address(server.sock.getpeername()[0]) if server.sock else None
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped:
        peer = peer.ipv4_mapped
    on_loopback = peer is not None and peer.is_loopback
    if not on_loopback or settings.BATON_SMTP_LOGIN_IN_CLEAR == "never":
        raise BusinessError(
            "SMTP_INSECURE_LOGIN",
            f"The SMTP password is not sent to {host} over a connection without TLS; set "
            "smtp_starttls (only a server on this machine's loopback may be used without, "
            "unless BATON_SMTP_LOGIN_IN_CLEAR is never).",
        )


def _addresses(value: Any) -> list[str]:
    if not value:
        return []
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _message(params: dict[str, Any], call: ConnectorCall) -> tuple[EmailMessage, list[str]]:
    sender = str(params.get("email_from") or "")
    to, cc, bcc = (_addresses(params.get(k)) for k in ("email_to", "email_cc", "email_bcc"))
    if not sender or not (to or cc or bcc):
        raise BusinessError(
            "SMTP_BAD_PARAMETERS", "smtp/SendEmail needs email_from and at least one recipient."
        )
    message = EmailMessage()
    message["From"] = sender
    if to:
        message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    if params.get("email_reply_to"):
        message["Reply-To"] = str(params["email_reply_to"])
    message["Subject"] = str(params.get("email_subject") or "")
    # One id per job: a retried send carries the same id, so a mail server can drop the copy.
    message["Message-ID"] = make_msgid(idstring=call.idempotency_key.replace("-", "")[:32])
    message.set_content(str(params.get("email_body") or ""))
    if params.get("email_body_html"):
        message.add_alternative(str(params["email_body_html"]), subtype="html")
    return message, to + cc + bcc


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


@connector("smtp/SendEmail", description="SpiffArena's e-mail command: sends one message.")
def send_email(params: dict[str, Any], call: ConnectorCall) -> dict[str, Any]:
    host = str(params.get("smtp_host") or "")
    if not host:
        raise BusinessError("SMTP_BAD_PARAMETERS", "smtp/SendEmail needs an smtp_host.")
    port = int(params.get("smtp_port") or 25)
    message, recipients = _message(params, call)
    timeout = float(params.get("timeout") or DEFAULT_TIMEOUT_SECONDS)
    try:
        with _PolicySMTP(host, port, timeout=timeout) as server:
            if _flag(params.get("smtp_starttls")):
                server.starttls(context=ssl.create_default_context())
            if params.get("smtp_user"):
                _refuse_login_in_clear(server, host)
                server.login(str(params["smtp_user"]), str(params.get("smtp_password") or ""))
            refused = server.send_message(message, to_addrs=recipients)
    except smtplib.SMTPAuthenticationError as exc:
        raise BusinessError(
            "SMTP_AUTH", f"The SMTP server refused the log-in ({exc.smtp_code})."
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise BusinessError(
            "SMTP_RECIPIENTS", f"Every recipient was refused: {', '.join(exc.recipients)}"
        ) from None
    except smtplib.SMTPResponseException as exc:
        if 400 <= exc.smtp_code < 500:
            raise TransientError(f"SMTP {exc.smtp_code} from {host}") from None
        raise BusinessError(
            f"SMTP_{exc.smtp_code}", f"SMTP {exc.smtp_code} from {host}: {exc.smtp_error!r}"
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise TransientError(f"Sending by {host}:{port} failed: {type(exc).__name__}") from None
    return {
        "sent": True,
        "recipients": [r for r in recipients if r not in refused],
        "message_id": message["Message-ID"],
    }
