"""A local SMTP server for development: accepts every email, logs one line for it, and keeps it as a file.

`python3 run.py` starts it on 127.0.0.1:PORTAL_SMTP_PORT (1025) unless PORTAL_SMTP_HOST points at a real
relay, so the outbox delivers out of the box and its "sent" is real. Messages are kept as .eml files
under the instance folder (instance/mail/), the newest KEEP of them.

    python -m portal.mailcatcher --port 1025 --dir instance/mail
"""
import argparse
import asyncio
import itertools
import os
import signal
import sys
import time
from email import message_from_bytes, policy

KEEP = 1000  # messages kept on disk; older ones are removed as new ones arrive


class Catcher:
    """An aiosmtpd handler: every message is accepted, written to `folder` and logged on one line."""

    def __init__(self, folder, keep=KEEP, out=None):
        self.folder, self.keep, self.out = folder, keep, out or sys.stdout
        self.counter = itertools.count(1)
        os.makedirs(folder, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):
        content = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        name = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{os.getpid()}-{next(self.counter):06d}.eml"
        path = os.path.join(self.folder, name)
        with open(path + ".part", "wb") as f:
            f.write(content)
        os.replace(path + ".part", path)
        subject = message_from_bytes(content, policy=policy.default).get("Subject", "(no subject)")
        print(f"mail catcher: {', '.join(envelope.rcpt_tos)}: {subject} (saved as {path})", file=self.out,
              flush=True)
        self._prune()
        return "250 Message accepted for delivery"

    def _prune(self):
        names = sorted(n for n in os.listdir(self.folder) if n.endswith(".eml"))
        for old in names[:-self.keep] if len(names) > self.keep else []:
            try:
                os.remove(os.path.join(self.folder, old))
            except FileNotFoundError:
                pass


def messages(folder):
    """Return the kept messages, oldest first, as email.message.EmailMessage objects."""
    if not os.path.isdir(folder):
        return []
    found = []
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".eml")):
        with open(os.path.join(folder, name), "rb") as f:
            found.append(message_from_bytes(f.read(), policy=policy.default))
    return found


async def serve(host, port, folder):
    """Serve SMTP on host:port until SIGTERM or SIGINT."""
    from aiosmtpd.smtp import SMTP

    handler = Catcher(folder)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="portal-mail-catcher"), host, port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"mail catcher: listening on {host}:{port}, keeping messages in {folder}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORTAL_SMTP_PORT") or 1025))
    parser.add_argument("--dir", default=os.path.join("instance", "mail"))
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
