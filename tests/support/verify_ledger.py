#!/usr/bin/env python3
"""An independent opsg ledger verifier, written from schemas/HASHING.md (sections 1-6) alone.

Deliberately simple: no JSON parser for the chain, one line at a time, the first failing rule wins.
Usage: verify_ledger.py LEDGER [CHECKPOINT]   (checkpoint MAC key from $OPSG_CHECKPOINT_KEY)
Prints `ok <lines> <head>` (exit 0) or `tamper <line> <rule>` (exit 5).
"""
import hashlib, hmac, json, os, re, sys

GENESIS = "0" * 64
HEX64 = re.compile(rb"[0-9a-f]{64}\Z")
PREFIX = re.compile(rb'\{"ledger":"opsg\.ledger/v1","seq":([1-9][0-9]{0,19}),"appended":"([^"\\]{1,64})","record":')


def sealed(line):
    """Section 2 and 3: (prev, hash) of an intact sealed line, else None."""
    n = len(line)
    if n < 150 or line[:1] != b"{" or line[n - 149:n - 140] != b',"prev":"' \
            or line[n - 76:n - 66] != b'","hash":"' or line[n - 2:] != b'"}':
        return None
    prev, stored = line[n - 140:n - 76], line[n - 66:n - 2]
    if not HEX64.match(prev) or not HEX64.match(stored):
        return None
    if hashlib.sha256(line[:n - 75] + b"}").hexdigest().encode() != stored:
        return None
    return prev.decode(), stored.decode()


def main():
    data = open(sys.argv[1], "rb").read()
    lines = data.split(b"\n")
    torn = lines.pop()  # after the last newline: empty unless the last line is torn
    prev_hash, k = GENESIS, 0
    checkpoint = json.load(open(sys.argv[2])) if len(sys.argv) > 2 else None
    for k, line in enumerate(lines, start=1):
        seal = sealed(line)
        m = PREFIX.match(line)
        if seal is None or m is None:
            return fail(k, "rule 2: not an intact sealed ledger line")
        if sealed(line[m.end():len(line) - 149]) is None:
            return fail(k, "rule 5: the record is not an intact sealed record")
        if int(m.group(1)) != k:
            return fail(k, "rule 3: seq is %s" % m.group(1).decode())
        if seal[0] != prev_hash:
            return fail(k, "rule 4: prev does not link")
        prev_hash = seal[1]
        if checkpoint and checkpoint["records"] == k and checkpoint["head"] != prev_hash:
            return fail(k, "section 6: rewritten")
    if torn:
        return fail(len(lines) + 1, "rule 1: torn last line")
    if checkpoint:
        if len(lines) < checkpoint["records"]:
            return fail(len(lines) + 1, "section 6: truncated")
        key = os.environ.get("OPSG_CHECKPOINT_KEY")
        if "mac" in checkpoint and key:
            msg = "opsg.checkpoint/v1\n%d\n%s\n%s" % (checkpoint["records"], checkpoint["head"], checkpoint["created"])
            mac = "hmac-sha256:" + hmac.new(key.encode(), msg.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(mac, checkpoint["mac"]):
                return fail(0, "section 6: forged checkpoint")
    print("ok %d %s" % (len(lines), prev_hash))
    return 0


def fail(line, why):
    print("tamper %d %s" % (line, why))
    return 5


if __name__ == "__main__":
    sys.exit(main())
