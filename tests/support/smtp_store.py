"""A real SMTP server for the tests: Debian's aiosmtpd, storing every accepted message as JSON.

Usage: /usr/bin/python3 smtp_store.py OUT_DIR [--tls-cert C --tls-key K [--smtps]] [--user U --password P]
                                      [--host H] [--port P]

It listens on 127.0.0.1 (or H) on a port the kernel picks (or P) and prints "READY <port>" once it
accepts connections. With a certificate it offers STARTTLS, or with --smtps speaks TLS from the first
byte (port 465's way); with a user it requires AUTH (and, as aiosmtpd does by default, refuses AUTH
outside TLS). Each message becomes OUT_DIR/<n>.json with the
envelope, the raw message, whether the session was encrypted and who logged in. Recipients whose
local part starts with "defer" are answered 451 (try again later), "reject" 550 (no such user), so
a test can see how the client reads SMTP's transient and permanent failures; "slow" ones are
accepted after 0.4 s, a server slow at every step but never silent long enough to time out a reply.
"""

import argparse
import asyncio
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Store:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local.startswith("slow"):
            await asyncio.sleep(0.4)
        if local.startswith("defer"):
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        if local.startswith("reject"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf8", errors="replace"),
            "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            "auth_user": session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
        }
        path = os.path.join(self.out_dir, f"{self.count:04d}.json")
        with open(path + ".part", "w") as f:
            json.dump(record, f)
        os.rename(path + ".part", path)
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--smtps", action="store_true")
    args = parser.parse_args()

    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        # handled=False: aiosmtpd itself answers a failure with 535, as a real server does.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    store = Store(args.out_dir)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def factory():
        return SMTP(
            store,
            hostname="smtp.test",
            tls_context=None if args.smtps else tls,
            require_starttls=False,
            auth_required=args.user is not None,
            # Over SMTPS the whole connection is encrypted before the first command.
            auth_require_tls=not args.smtps,
            authenticator=authenticator if args.user else None,
            loop=loop,
        )

    server = loop.run_until_complete(
        loop.create_server(factory, args.host, args.port, ssl=tls if args.smtps else None)
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
