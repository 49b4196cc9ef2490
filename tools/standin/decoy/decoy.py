#!/usr/bin/env python3
"""Decoy listener for egress tests (stand-in; Python standard library only).

A destination that SHOULD be unreachable from a filtered host: it answers on every TCP
port given (a one-line HTTP reply naming the decoy) and echoes on every UDP port given,
over IPv4 and IPv6. Tests prove a block by failing to reach it from the filtered host
while reaching it from an unfiltered one (the positive control).

    decoy.py --tcp 8000 --tcp 9000 --udp 9001
"""
from __future__ import annotations

import argparse
import socket
import threading

REPLY = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\ndecoy\n"


def dual_stack(kind: int, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, kind)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::", port))
    return sock


def serve_tcp(port: int) -> None:
    sock = dual_stack(socket.SOCK_STREAM, port)
    sock.listen(64)
    while True:
        conn, _ = sock.accept()
        with conn:
            conn.settimeout(2)
            try:
                conn.recv(1024)
            except OSError:
                pass
            conn.sendall(REPLY)


def serve_udp(port: int) -> None:
    sock = dual_stack(socket.SOCK_DGRAM, port)
    while True:
        data, peer = sock.recvfrom(4096)
        sock.sendto(b"decoy echo: " + data, peer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tcp", type=int, action="append", default=[])
    parser.add_argument("--udp", type=int, action="append", default=[])
    args = parser.parse_args()
    threads = [threading.Thread(target=serve_tcp, args=(p,)) for p in args.tcp]
    threads += [threading.Thread(target=serve_udp, args=(p,)) for p in args.udp]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
