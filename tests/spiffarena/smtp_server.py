"""A small SMTP server on 127.0.0.1 for tests: speaks enough of RFC 5321 (EHLO, AUTH PLAIN,
MAIL, RCPT, DATA, RSET, NOOP, QUIT) for smtplib, and keeps what it received."""

import base64
import socketserver
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: Message
    login: str | None


@dataclass
class SmtpServer:
    password: str = "letmein"
    refuse_recipients: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    # Every AUTH attempt's user name, whether it succeeded or not.
    logins: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:  # noqa: C901 -- the handler is one command table
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(f"{line}\r\n".encode())

            def handle(self) -> None:
                self.reply("220 test ESMTP")
                sender, recipients, login = "", [], None
                while raw := self.rfile.readline():
                    command = raw.decode().rstrip("\r\n")
                    verb = command.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.wfile.write(b"250-test\r\n250 AUTH PLAIN\r\n")
                    elif verb == "AUTH":
                        _, user, password = base64.b64decode(command.split()[2]).split(b"\0")
                        outer.logins.append(user.decode())
                        if password.decode() != outer.password:
                            self.reply("535 5.7.8 Authentication failed")
                            continue
                        login = user.decode()
                        self.reply("235 2.7.0 Authenticated")
                    elif verb == "MAIL":
                        sender = command.split(":", 1)[1].strip().strip("<>").split(">")[0]
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        to = command.split(":", 1)[1].strip().strip("<>").split(">")[0]
                        if to in outer.refuse_recipients:
                            self.reply("550 5.1.1 No such user")
                            continue
                        recipients.append(to)
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 End data with <CR><LF>.<CR><LF>")
                        lines = []
                        while (line := self.rfile.readline()) not in (b".\r\n", b""):
                            lines.append(line[1:] if line.startswith(b"..") else line)
                        outer.received.append(
                            Received(sender, recipients, message_from_bytes(b"".join(lines)), login)
                        )
                        sender, recipients = "", []
                        self.reply("250 OK queued")
                    elif verb == "QUIT":
                        self.reply("221 Bye")
                        return
                    else:  # RSET, NOOP
                        self.reply("250 OK")

        self.server = socketserver.ThreadingTCPServer((self.host, 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
