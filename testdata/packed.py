#!/usr/bin/env python3
# A foreign client's packed-message reader and writer, written from the
# "Packed messages" section of the package documentation (doc.go) alone,
# with nothing but Python's standard library. TestForeignPackedDecoder runs it.
#
#   packed.py read  < body     prints "id type key" per action, in order
#   packed.py write ID...      prints a packed body of actions of type "t"
import json
import sys


def read(body: bytes):
    doc = json.loads(body.decode("utf-8"))
    if doc.get("v") != 2:
        raise SystemExit("not a packed message: v is %r" % doc.get("v"))
    actions = doc["actions"]
    if not actions:
        raise SystemExit("a pack holds at least one action")
    for a in actions:
        if a.get("v") != 1:
            raise SystemExit("element is not a version-1 action: %r" % a)
        print(a["id"], a["type"], a.get("key") or a["id"])


def write(ids):
    elems = [json.dumps({"v": 1, "id": i, "type": "t", "key": "key-" + i,
                         "created_at": "2026-12-02T10:00:00Z"}, separators=(",", ":"))
             for i in ids]
    sys.stdout.write('{"v":2,"actions":[' + ",".join(elems) + "]}")


if __name__ == "__main__":
    if sys.argv[1] == "read":
        read(sys.stdin.buffer.read())
    else:
        write(sys.argv[2:])
