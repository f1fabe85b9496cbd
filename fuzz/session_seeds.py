#!/usr/bin/env python3
"""Writes the session fuzzer's seed inputs (ipch/fuzz_session.h) into fuzz/corpora/session_*.

The input format, as Session::One() decodes it, one operation after another:
  op byte: op % 8 picks  0,1 send | 2,3 receive | 4 close | 5 reconnect | 6 faults or flip | 7 send over max
           bit 7: the end (0 client, 1 server); receive: bits 4-5 == 1 waits 1 ms (else a probe,
           or a settle wait when a message or PeerClosed is due); reconnect: bit 6 listens again;
           op 6: bit 4 flips a bit of the shared segment instead of faults.
  send:    [size byte][content: min(size, 16) bytes]; size byte >> 6: 0 -> its low 6 bits,
           1 -> one of 0 1 2 255 256 4095 4096 4097 (low 3 bits), 2 -> a u16 LE follows, 3 -> all room.
  faults:  [kind][param]: kind % 6: 0 none, 1 EINTR, 2 EAGAIN, 3 short I/O, 4 early wake-ups (each
           with probability (param % 4 + 1) / 8, seed param), 5 one visible errno: [class byte]
           follows, errno = the (param % 8)th of kVisibleErrnos, at the (1 + (param >> 3) % 16)th call.
  flip:    [u16 LE offset][bit]
Run from the repository root: python3 fuzz/session_seeds.py
"""
import os

def send(side, n, content=b''):
    op = 0x80 if side else 0x00
    if n <= 63:
        b = bytes([op, n])
    else:
        b = bytes([op, 0x80, n & 0xff, n >> 8])
    return b + (content + bytes(16))[:min(n, 16)]

def recv(side, timed=False):
    return bytes([(0x80 if side else 0) | 0x02 | (0x10 if timed else 0)])

def close(side):
    return bytes([(0x80 if side else 0) | 0x04])

def reconnect(relisten=False):
    return bytes([0x05 | (0x40 if relisten else 0)])

def faults(kind, param=3, cls=None):
    return bytes([0x06, kind, param]) + (bytes([cls]) if kind == 5 else b'')

def flip(at, bit):
    return bytes([0x16, at & 0xff, at >> 8, bit])

def oversize(side):
    return bytes([0x07 | (0x80 if side else 0)])

EINTR, EAGAIN, SHORT, WAKE, VISIBLE = 1, 2, 3, 4, 5

def exchange(n_msgs, size, side=0):
    return b''.join(send(side, size, bytes([i]) * 16) for i in range(n_msgs)) + recv(1 - side) * n_msgs

SEEDS = {
    'ping_pong': send(0, 5, b'hello') + recv(1) + send(1, 5, b'world') + recv(0),
    'close_then_peer': send(0, 3, b'abc') + close(0) + recv(1) + recv(1) + send(1, 3) + recv(0) + close(0),
    'eintr': faults(EINTR, 3) + exchange(4, 4096) + exchange(4, 300, 1),
    'eagain': faults(EAGAIN, 3) + exchange(4, 4096) + exchange(4, 300, 1),
    'short_io': faults(SHORT, 3) + exchange(3, 2000) + exchange(3, 2000, 1),
    'early_wakeups': faults(WAKE, 3) + send(0, 10) + recv(1) + recv(1, True) + send(1, 10) + recv(0),
    'visible_write': faults(VISIBLE, 0x19, 1) + exchange(3, 100) + reconnect() + exchange(2, 100),
    'visible_read': faults(VISIBLE, 0x01, 0) + exchange(3, 100) + reconnect(True) + exchange(2, 100),
    'visible_connect': faults(VISIBLE, 0x00, 3) + reconnect(True) + reconnect(True) + exchange(1, 10),
    'visible_shm': faults(VISIBLE, 0x08, 6) + reconnect(True) + reconnect() + exchange(1, 10),
    'visible_sysv': faults(VISIBLE, 0x10, 8) + reconnect(True) + exchange(2, 10) + reconnect() + exchange(1, 10),
    'oversize': oversize(0) + oversize(1) + close(0) + oversize(0) + oversize(1),
    'boundaries': b''.join(send(0, n) for n in (0, 1, 255, 256, 4095)) + recv(1) * 5,
    'several_buffered': exchange(5, 20) + exchange(5, 20, 1),
    'reconnect': send(0, 2, b'hi') + reconnect() + recv(1) + reconnect(True) + send(1, 1) + recv(0) + close(1) +
                 reconnect() + recv(0, True) + recv(0),
    'timed_waits': recv(0, True) + recv(1, True) + recv(0) + recv(1),
    'full_room': bytes([0x00, 0xc0]) + bytes(16) + send(0, 5) + recv(1) + recv(1),
}
SHM_SEEDS = {
    'flip_header': send(0, 16, b'x' * 16) + flip(0, 0) + recv(1) + recv(1) + send(0, 1) + recv(1),
    'flip_counters': send(0, 100) + send(1, 100) + recv(1) + flip(64, 3) + flip(72, 7) + recv(1) + recv(0),
}

for target in ('inmem', 'unix', 'posix_shm', 'sysv_mq'):
    d = os.path.join('fuzz', 'corpora', 'session_' + target)
    os.makedirs(d, exist_ok=True)
    seeds = dict(SEEDS, **(SHM_SEEDS if target == 'posix_shm' else {}))
    for name, data in seeds.items():
        with open(os.path.join(d, name), 'wb') as f:
            f.write(data)
