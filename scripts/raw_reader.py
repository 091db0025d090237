#!/usr/bin/env python3
"""A dhclient-like raw reader: AF_PACKET on IFACE with PACKET_AUXDATA, counting IPv4 UDP datagrams
to PORT. Prints "got csumnotready valid" after N datagrams, or after 3 s of silence once the first
has arrived (60 s before it: the sender may start slowly, python3 under TCG in the VM matrix).
Usage: raw_reader.py IFACE PORT N READY_FILE   (READY_FILE is created once the socket is bound)"""
import select
import socket
import struct
import sys

SOL_PACKET, PACKET_AUXDATA, TP_STATUS_CSUMNOTREADY = 263, 8, 8


def fold(b):
    if len(b) % 2:
        b += b'\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xffff) + (t >> 16)
    return t


def main():
    iface, port, want, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    # Room for every datagram of a test's stream (seconds at 1 kHz) even when this process is
    # starved for a while on a loaded host: a full buffer drops frames, which a test would count
    # as lost. SO_RCVBUFFORCE (root) goes beyond net.core.rmem_max.
    SO_RCVBUFFORCE = 33
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
    s.bind((iface, 0))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    open(ready, 'w').close()
    got = notready = valid = 0
    while got < want:
        r, _, _ = select.select([s], [], [], 3 if got else 60)
        if not r:
            break
        data, anc, _, _ = s.recvmsg(65535, socket.CMSG_SPACE(64))
        if len(data) < 42 or data[12:14] != b'\x08\x00' or data[23] != 17:
            continue
        ihl = (data[14] & 15) * 4
        udp = data[14 + ihl:14 + struct.unpack('!H', data[16:18])[0]]
        if struct.unpack('!H', udp[2:4])[0] != port:
            continue
        got += 1
        st = next((struct.unpack('I', d[:4])[0] for lvl, typ, d in anc
                   if lvl == SOL_PACKET and typ == PACKET_AUXDATA), 0)
        notready += bool(st & TP_STATUS_CSUMNOTREADY)
        valid += fold(data[26:34] + struct.pack('!BBH', 0, 17, len(udp)) + udp) == 0xffff
    print(got, notready, valid, flush=True)


if __name__ == '__main__':
    main()
