#!/usr/bin/env python3
"""make_corpus.py — writes the committed seed corpora of the fuzz targets
command_frame, effect_frame, text, config and command_line (the receipt
target has its own generator, tests/fuzz/receipt/make_corpus.c).

Each corpus has a few valid inputs, so the fuzzer starts deep inside the
code, and hand-made nasty ones: truncations, oversized declared lengths,
deep nesting, wrong types, bad UTF-8, huge numbers. Rerun after a format
change, from the repository root:

    python3 tests/fuzz/make_corpus.py

msgpack is encoded by hand below (no module needed), so that the corpus can
also hold encodings a library would never produce."""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)))


def mp_uint(v):
    if v < 0x80:
        return bytes([v])
    if v < 0x100:
        return b"\xcc" + bytes([v])
    if v < 0x10000:
        return b"\xcd" + struct.pack(">H", v)
    if v < 0x100000000:
        return b"\xce" + struct.pack(">I", v)
    return b"\xcf" + struct.pack(">Q", v)


def mp_int(v):
    if v >= 0:
        return mp_uint(v)
    if v >= -32:
        return struct.pack(">b", v)
    if v >= -128:
        return b"\xd0" + struct.pack(">b", v)
    if v >= -32768:
        return b"\xd1" + struct.pack(">h", v)
    if v >= -(1 << 31):
        return b"\xd2" + struct.pack(">i", v)
    return b"\xd3" + struct.pack(">q", v)


def mp_str(s):
    b = s.encode() if isinstance(s, str) else s
    n = len(b)
    if n < 32:
        return bytes([0xA0 | n]) + b
    if n < 0x100:
        return b"\xd9" + bytes([n]) + b
    if n < 0x10000:
        return b"\xda" + struct.pack(">H", n) + b
    return b"\xdb" + struct.pack(">I", n) + b


def mp_array(items):
    n = len(items)
    head = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
    return head + b"".join(items)


def command(req=1, roles=0, origin="001AAAAAB", account="alice", nick="alice",
            channel="#shop", msg_id="m-1", text="BUY tee 2", extra=()):
    return mp_array([mp_uint(1), mp_uint(1), mp_uint(req), mp_uint(roles),
                     mp_str(origin), mp_str(account), mp_str(nick),
                     mp_str(channel), mp_str(msg_id), mp_str(text), *extra])


def effect(kind=1, code=0, req=1, receipt=0, origin="001AAAAAB", channel="",
           text="Bought 2x Tee (tee) for 10.00.", extra=()):
    return mp_array([mp_uint(1), mp_uint(2), mp_uint(kind), mp_int(code),
                     mp_uint(req), mp_uint(receipt), mp_str(origin),
                     mp_str(channel), mp_str(text), *extra])


def write(target, name, data, folder="corpus"):
    """folder="regressions" for inputs that crash the current core: they
    fail the replay until fixed, and would stop a fuzzer at start-up."""
    d = os.path.join(ROOT, target, folder)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame_nasties(target, good):
    write(target, "bad-empty", b"")
    write(target, "bad-truncated", good[: len(good) // 2])
    write(target, "bad-trailing-byte", good + b"\xc0")
    write(target, "codec-array32-bomb", b"\xdd\xff\xff\xff\xff" + good[1:], "regressions")
    write(target, "codec-map32-bomb", b"\xdf\xff\xff\xff\xff\x01\x01", "regressions")
    write(target, "bad-str32-len", b"\x93\x01\x01\xdb\xff\xff\xff\xf0abc")
    write(target, "bad-bin32-len", b"\x93\x01\x01\xc6\xff\xff\xff\xf0abc")
    write(target, "bad-deep-nesting", b"\x91" * 1000 + b"\x01")
    write(target, "bad-deep-maps", b"\x81\x01" * 600 + b"\x01")
    write(target, "bad-ext", b"\x93\x01\x01\xc7\x05\x01hello")
    write(target, "bad-float", b"\x93\xcb" + struct.pack(">d", 1.0) + b"\x01\x01")
    write(target, "bad-not-array", mp_str("BUY tee 2"))
    write(target, "bad-oversize", b"\xdc\x00\x0a" + b"\x01" * 1100)


def make_command_frame():
    t = "command_frame"
    write(t, "ok-buy", command())
    write(t, "ok-private-oper", command(req=2**64 - 1, roles=3, channel="",
                                        text="TALLY GRANT bob 100"))
    write(t, "ok-empty-strings", command(origin="", account="", nick="", channel="",
                                         msg_id="", text=""))
    write(t, "ok-max-lengths", command(origin="o" * 64, account="a" * 64, nick="n" * 64,
                                       channel="#" * 64, msg_id="m" * 64, text="x" * 512))
    write(t, "ok-utf8", command(text="TIP b\u00f6b 5 \U0001f600", nick="b\u00f6b"))
    write(t, "ok-v1x-tail", command(extra=(mp_str("future"), mp_uint(7))))
    write(t, "ok-roles-high-bits", command(roles=2**40 + 1))
    frame_nasties(t, command())
    write(t, "bad-text-513", command(text="x" * 513))
    write(t, "bad-name-65", command(account="a" * 65))
    write(t, "bad-nul-in-text", command(text="BUY\x00tee"))
    write(t, "bad-negative-req", command()[:3] + mp_int(-1) + command()[4:])
    write(t, "bad-schema-2", b"\x9a\x02" + command()[2:])
    write(t, "bad-effect-type", b"\x9a\x01\x02" + command()[3:])
    write(t, "bad-short-array", command()[:1].replace(b"\x9a", b"\x99") + command()[1:-10])
    write(t, "bad-str8-padding", b"\x9a\x01\x01\x01\x00" + b"\xd9\x01a" * 5 + b"\xd9\x03BUY")


def make_effect_frame():
    t = "effect_frame"
    write(t, "ok-reply", effect())
    write(t, "ok-announce", effect(kind=2, channel="#shop", origin="", text="alice bought a tee"))
    write(t, "ok-status", effect(kind=3, req=0, origin="", text="ready"))
    write(t, "ok-seq", effect(extra=(mp_uint(2**64 - 1),)))
    write(t, "ok-refusal", effect(code=-106, text="sold out"))
    write(t, "ok-receipt", effect(receipt=2**63, text="receipt 9223372036854775808"))
    write(t, "ok-code-min", effect(code=-(2**63), text=""))
    write(t, "ok-code-max", effect(code=2**63 - 1))
    write(t, "ok-kind-huge", effect(kind=2**64 - 1))
    write(t, "ok-max-text", effect(text="\u00e9" * 256, origin="o" * 64, channel="c" * 64))
    # 1.5: a message code and its arguments (spans of text, numbers)
    tip = "Thank you bob for tipping alice 1.50 credits: *bold* <b>x</b>"
    write(t, "ok-msg-args", effect(kind=2, channel="#live", origin="", text=tip,
                                   extra=(mp_uint(0), mp_uint(0), mp_uint(3),
                                          mp_str("1:10+3,1:26+5,2:32+12=150/2,3:46+15"))))
    write(t, "ok-msg-args-span-past-text", effect(text="hi", extra=(
        mp_uint(0), mp_uint(0), mp_uint(3), mp_str("1:1+5"))))
    write(t, "ok-msg-args-junk", effect(text="hi", extra=(
        mp_uint(0), mp_uint(0), mp_uint(3), mp_str("2:0+1=-9223372036854775808/18,"))))
    # a command span (kind 8) holding its sku: "BUY pin5" as the engine says it
    live = "LIVE NOW: drop pin5 - 3 units at 1.00 credits for 6 s. Type: BUY pin5"
    write(t, "ok-msg-args-command", effect(kind=2, channel="#live", origin="", text=live,
                                           extra=(mp_uint(0), mp_uint(0), mp_uint(9),
                                                  mp_str("3:10+9,6:22+1=3,2:33+12=100/2,8:61+8,5:65+4"))))
    write(t, "ok-msg-no-args", effect(extra=(mp_uint(0), mp_uint(0), mp_uint(1))))
    write(t, "ok-args-max", effect(text="x" * 512, extra=(
        mp_uint(0), mp_uint(0), mp_uint(1), mp_str(",".join(["7:500+12=9999999999"] * 8)[:160]))))
    write(t, "bad-args-too-long", effect(extra=(mp_uint(0), mp_uint(0), mp_uint(1), mp_str("1" * 161))))
    frame_nasties(t, effect())
    write(t, "bad-code-u64", b"\x99\x01\x02\x01\xcf" + b"\xff" * 8 + effect()[5:])
    write(t, "bad-command-type", b"\x99\x01\x01" + effect()[3:])


def make_text():
    t = "text"
    head = lambda dec, num=0: bytes([dec]) + struct.pack("<Q", num)
    cases = {
        "ok-buy": head(2, 100) + b"BUY tee 2",
        "ok-amount-dec2": head(2) + b"5.25",
        "ok-amount-dec0": head(0) + b"9223372036854775807",
        "ok-amount-dec6": head(6) + b"922337203685.477580",
        "ok-amount-max-dec1": head(1) + b"922337203685477580.7",
        "ok-utf8-mix": head(2) + "caf\u00e9 \u65e5\u672c \U0001f600".encode(),
        "ok-many-spaces": head(2) + b"   TIP   bob   5   ",
        "bad-17-tokens": head(2) + b" ".join([b"w"] * 17),
        "bad-exponent": head(2) + b"1e5",
        "bad-negative": head(2) + b"-5",
        "bad-unicode-digit": head(0) + "\u0665".encode(),
        "bad-fullwidth": head(0) + "\uff15".encode(),
        "bad-dots": head(2) + b"1..5",
        "bad-trailing-dot": head(2) + b"5.",
        "bad-overflow": head(0) + b"99999999999999999999",
        "bad-overlong": head(2) + b"\xc0\xaf \xe0\x80\xaf",
        "bad-surrogate": head(2) + b"\xed\xa0\x80",
        "bad-above-max": head(2) + b"\xf4\x90\x80\x80",
        "bad-truncated-utf8": head(2) + b"abc\xe2\x82",
        "bad-ctcp": head(2) + b"\x01VERSION\x01",
        "bad-crlf-nul": head(2) + b"BUY\r\ntee\x00 2",
        "bad-c1": head(2) + b"\xc2\x85",
        "bad-del": head(2) + b"\x7f",
        "edge-zero": head(3) + b"0.000",
        "edge-uint-max": head(0, 2**64 - 1) + b"999999999999999999",
        "edge-format-min": head(6, 2**63) + b"",
    }
    for name, data in cases.items():
        write(t, name, data)


def make_config():
    t = "config"
    cases = {
        "ok-minimal": b"\xff" + b"dsn=host=/tmp dbname=tally\nsigning_key=var/k.pem",
        "ok-all": b"\x80" + b"\n".join([
            b"dsn=postgresql:///tally", b"currency=credits", b"decimals=2", b"fee_bps=250",
            b"daily_cap=100000", b"welcome_grant=0", b"consent_ttl=120", b"refund_window=86400",
            b"queue_depth=16384", b"batch_max=4096", b"writers=2", b"accounts_max=200000",
            b"items_max=10000", b"keys_max=262144", b"purchases_max=262144", b"rate_account=60",
            b"rate_channel=600", b"pending_timeout=3000"]),
        "bad-unknown-key": b"\x20" + b"dsn=x\nnosuchkey=1",
        "bad-negative": b"\x40" + b"dsn=x\nfee_bps=-1",
        "bad-hex": b"\x40" + b"dsn=x\nqueue_depth=0x100",
        "bad-exponent": b"\x40" + b"dsn=x\ndaily_cap=1e9",
        "bad-huge": b"\x40" + b"dsn=x\ndaily_cap=999999999999999999999999",
        "bad-range": b"\x40" + b"dsn=x\ndecimals=7\nfee_bps=5001",
        "bad-batch-over-queue": b"\xff" + b"dsn=x\nqueue_depth=64\nbatch_max=8192",
        "bad-long-currency": b"\xff" + b"dsn=x\ncurrency=" + b"c" * 40,
        "bad-empty-values": b"\xff" + b"dsn=\ncurrency=\nsigning_key=",
        "bad-tiny-errbuf": b"\x01" + b"dsn=x\nfee_bps=99999",
        "bad-no-errbuf": b"\x00" + b"nosuchkey=" + b"k" * 300,
        "bad-spaces": b"\x40" + b"dsn=x\n fee_bps = 250",
        "bad-nul": b"\x40" + b"dsn=x\nfee_bps=2\x0050",
        "bad-u32-wrap": b"\x40" + b"dsn=x\nqueue_depth=4294967360",
        # Config-file syntax (tally_config_load_text): comments, blanks,
        # spaces and tabs, CRLF, duplicates, over-long lines, bad UTF-8.
        "file-ok-comments": b"\xff" + b"# tally.conf\n\ndsn = host=/tmp dbname=tally pw=a#b\n"
                            b"  # indented\n\tsigning_key\t=\tvar/k.pem \r\ncurrency = cr\xc3\xa9dits",
        "file-bad-duplicate": b"\xff" + b"dsn = x\nfee_bps = 1\nfee_bps = 2\n",
        "file-bad-no-equals": b"\x40" + b"dsn = x\nfee_bps 250\n",
        "file-bad-long-line": b"\xff" + b"dsn = " + b"a" * 1100 + b"\nfee_bps = 1\n",
        "file-bad-utf8": b"\xff" + b"dsn = x\ncurrency = \xed\xa0\x80\n",
        "file-bad-lone-cr": b"\x20" + b"dsn = x\rfee_bps = 1\n",
    }
    for name, data in cases.items():
        write(t, name, data)


def make_command_line():
    """Programs for fuzz_command_line.c: 7 set-up bytes (clock, fee, cap,
    refund window, 3 items), then steps: opcode%8 0 buy, 1 tip,
    2 refund, 3 grant, 4 commit, 5 release, 6 clock, 7 item admin."""
    t = "command_line"
    # set-up: clock 0, fee_bps=250 (b%3==1), no cap (odd), refund window
    # 86400 (odd); items: tee by user:c, 3 in stock; mug by user:b and
    # sticker by user:d, unlimited. Users: 0 a, 1 b, 2 c, 3 d; accounts for
    # TIP: 0 sys:fees, 1 sys:external, 2 a, 3 b, 4 c, 5 d.
    setup = bytes([0, 1, 1, 1, 0x46, 0x45, 0x0B])
    grant = lambda key, user, amt: bytes([3, key, user, 1]) + struct.pack(">H", amt)
    buy = lambda key, user, item, qty: bytes([0, key, user, item, qty])
    tip = lambda key, user, to, amt: bytes([1, key, user, to, 0, amt])
    refund_full = lambda key, user, idx: bytes([2, key, user, idx, 1])
    refund_part = lambda key, user, idx, amt: bytes([2, key, user, idx, 0, 0, amt])
    commit = lambda k: bytes([4, k])
    release = lambda k: bytes([5, k])
    cases = {
        "ok-grant-buy-commit": setup + grant(1, 1, 5000) + commit(0) + buy(2, 1, 0, 2) + commit(0),
        "ok-buy-refund": setup + grant(1, 1, 5000) + commit(0) + buy(2, 1, 1, 3) + commit(0)
        + refund_full(3, 1, 0) + commit(0),
        "ok-partial-refunds": setup + grant(1, 2, 60000) + commit(0) + buy(2, 2, 1, 7) + commit(0)
        + refund_part(3, 2, 0, 7) + commit(0) + refund_part(4, 2, 0, 9) + commit(0)
        + refund_full(5, 2, 0) + commit(0),
        "ok-release-all": setup + grant(1, 1, 5000) + buy(2, 1, 0, 1) + grant(3, 2, 100)
        + release(0) + release(0) + release(0),
        "ok-tip-chain": setup + grant(1, 0, 900) + commit(0) + tip(2, 0, 3, 200) + tip(3, 0, 4, 100)
        + commit(1) + release(0),
        "ok-key-reuse": setup + grant(1, 1, 500) + grant(1, 1, 500) + grant(1, 1, 600) + commit(0)
        + grant(1, 1, 500),
        "ok-sold-out": bytes([0, 1, 1, 1, 0x42, 0x45, 0x0B]) + grant(1, 1, 60000) + commit(0)
        + buy(2, 1, 0, 2) + buy(3, 1, 0, 1) + buy(4, 1, 0, 1) + commit(0) + release(0),
        "ok-daily-cap": bytes([0, 1, 2, 1, 0x46, 0x45, 0x0B]) + grant(1, 1, 60000) + commit(0)
        + buy(2, 1, 1, 30) + buy(3, 1, 1, 30) + bytes([6 | 8, 30]) + buy(4, 1, 1, 30),
        "ok-refund-window": bytes([0, 1, 1, 2, 0x46, 0x45, 0x0B]) + grant(1, 1, 6000) + commit(0)
        + buy(2, 1, 1, 1) + commit(0) + bytes([6, 200]) + refund_full(3, 1, 0),
        "ok-item-admin": setup + bytes([7, 0, 2, 3]) + bytes([7, 1, 3]) + bytes([7, 2, 0, 0, 0x20])
        + grant(1, 1, 60000) + commit(0) + buy(2, 1, 1, 1) + buy(3, 1, 2, 5),
        "nasty-qty-zero-and-256": setup + grant(1, 1, 500) + commit(0) + buy(2, 1, 0, 0)
        + buy(3, 1, 0, 101) + buy(4, 1, 0, 255),
        "nasty-self-buy": setup + grant(1, 0, 500) + commit(0) + buy(2, 0, 0, 1),
        "nasty-tip-to-sys": setup + grant(1, 1, 500) + commit(0) + tip(2, 1, 0, 5) + tip(3, 1, 1, 5),
        "nasty-refund-unknown": setup + bytes([2, 1, 1, 0xff, 0x12, 0x34, 1]),
        "nasty-refund-before-commit": setup + grant(1, 1, 5000) + commit(0) + buy(2, 1, 1, 1)
        + refund_full(3, 1, 0) + commit(0) + refund_full(3, 1, 0),
        "nasty-creator-spent": setup + grant(1, 1, 5000) + commit(0) + buy(2, 1, 1, 2) + commit(0)
        + tip(3, 2, 3, 95) + commit(0) + refund_full(4, 1, 0),
        "nasty-steps": setup + bytes(range(256)) * 4,
    }
    for name, data in cases.items():
        write(t, name, data)
    # Regressions of docs/FUZZING.md finding 2 (grants overflow sys:external).
    write(t, "grant-external-overflow", setup + bytes([3, 1, 1, 4, 9]) + bytes([3, 2, 2, 4, 9])
          + commit(0) + commit(0), "regressions")
    write(t, "grant-inflight-overflow", setup + bytes([3, 1, 1, 4, 0]) + bytes([3, 2, 1, 4, 1])
          + commit(0) + commit(0), "regressions")


def make_stream():
    """Streams for tests/fuzz/stream: byte 0 picks the chunking (odd: one byte
    at a time), then length-prefixed frames of every type of tally/frames.h."""
    t = "stream"

    def wrap(frame):
        return struct.pack(">I", len(frame)) + frame

    def hdr(ftype, fields):
        return mp_array([mp_uint(1), mp_uint(ftype)] + fields)

    hello = hdr(3, [mp_uint(1), mp_uint(1), mp_str("libera"), mp_str("m_tally/1.3"),
                    mp_str("irc1.example.net"), mp_uint(0), mp_uint(7), mp_str("ab" * 32),
                    mp_uint(0)])
    server = hdr(4, [mp_uint(1), mp_uint(1), mp_uint(0), mp_int(0), mp_str("tallyd-a"),
                     mp_uint(0), mp_str("0f" * 32), mp_str("")])
    verdict = hdr(4, [mp_uint(1), mp_uint(1), mp_uint(0), mp_int(-9), mp_str("tallyd-a"),
                      mp_uint(0), mp_str(""), mp_str("wire version: no version in common")])
    presence = hdr(5, [mp_str("libera"), mp_str("alice"), mp_str("#shop"), mp_uint(1),
                       mp_uint(1)])
    ack = hdr(6, [mp_uint(42)])
    eff = effect()  # v1.0 effect: 7 fields, seq absent
    eff_seq = effect(extra=(mp_uint(9),))
    session = wrap(hello) + wrap(presence) + wrap(ack) + wrap(eff_seq)
    write(t, "ok-session-bytewise", b"\x01" + session)
    write(t, "ok-session-chunks", b"\x02" + session)
    write(t, "ok-server-side", b"\x04" + wrap(server) + wrap(verdict) + wrap(eff))
    write(t, "ok-max-frame", b"\x06" + wrap(b"\xc0" * 1024))
    write(t, "ok-presence-flags", b"\x08" + wrap(hdr(5, [mp_str("n"), mp_str("a"), mp_str("r"),
                                                         mp_uint(0), mp_uint(0)])))
    write(t, "bad-presence-2", b"\x03" + wrap(hdr(5, [mp_str("n"), mp_str("a"), mp_str("r"),
                                                      mp_uint(2), mp_uint(1)])))
    write(t, "bad-cut-frame", b"\x0a" + session[:-3])
    write(t, "bad-cut-prefix", b"\x0b" + wrap(ack) + b"\x00\x00")
    write(t, "bad-zero-length", b"\x0c" + wrap(ack) + b"\x00\x00\x00\x00" + wrap(ack))
    write(t, "bad-over-limit", b"\x0d" + wrap(ack) + struct.pack(">I", 1025) + b"\x00" * 1025)
    write(t, "bad-huge-length", b"\x0e" + b"\xff\xff\xff\xff" + wrap(ack))
    write(t, "bad-text-client", b"\x0f" + b"BUY tee 2\r\n")
    write(t, "bad-garbage-frames", b"\x10" + wrap(b"\x93\x01\x03\xc1") + wrap(b"\xdd\xff\xff\xff\xff")
          + wrap(b"\x92\x02\x03") + wrap(hello[:-1]))


if __name__ == "__main__":
    make_command_frame()
    make_effect_frame()
    make_text()
    make_config()
    make_command_line()
    make_stream()
