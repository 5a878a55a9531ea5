#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# TCP transfers over an instance's network link, for ikc_test net_link:
#   mk_net_xfer.py send ADDR PORT BYTES   send BYTES of "multikernel\n" repeated,
#                                         then wait until the peer closes
#   mk_net_xfer.py recv ADDR PORT BYTES   read BYTES (then close), print their MD5
#   mk_net_xfer.py md5 BYTES              the MD5 of what send sends
# The sample init (samples/multikernel/initramfs/init) listens on 5001 and
# prints the MD5 of what it received, and sends on 5002 what send sends.
import hashlib
import socket
import sys

PATTERN = b"multikernel\n"


def stream(n):
    """The first n bytes of PATTERN repeated (what `yes multikernel | head -c n` gives)."""
    chunk = PATTERN * (65536 // len(PATTERN))
    while n > 0:
        piece = chunk[: min(n, len(chunk))]
        yield piece
        n -= len(piece)


def main():
    what = sys.argv[1]
    if what == "md5":
        h = hashlib.md5()
        for piece in stream(int(sys.argv[2])):
            h.update(piece)
        print(h.hexdigest())
        return 0
    addr, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    s = socket.create_connection((addr, port), timeout=120)
    if what == "send":
        for piece in stream(n):
            s.sendall(piece)
        s.shutdown(socket.SHUT_WR)
        # Done once the peer closes (a peer that answers once it read
        # everything, like net_bench's, makes this the time all arrived).
        while s.recv(65536):
            pass
        s.close()
        return 0
    h = hashlib.md5()
    got = 0
    while got < n:
        data = s.recv(min(1 << 20, n - got))
        if not data:
            break
        h.update(data)
        got += len(data)
    s.close()
    if got != n:
        print("short: %d of %d bytes" % (got, n), file=sys.stderr)
        return 1
    print(h.hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main())
