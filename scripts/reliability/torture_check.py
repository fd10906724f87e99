#!/usr/bin/env python3
"""Checks for scripts/reliability/kill-torture.sh (standard library only).

  check PATH...            every file under PATH is whole: safetensors files parse (header, offsets, length), JSON
                           parses, CSV rows have the header's width, PNGs end in IEND with right CRCs, text is UTF-8;
                           temporary files of AtomicFile (NAME.tmpPID) are listed, not checked. Prints one JSON line:
                           {"bad": [...], "temporaries": {path: bytes}, "files": n}; exit 1 when a file is bad.
  state KIND PATH          what a run has committed, as JSON: KIND "ckpt" -> {"iteration": n} of the checkpoint;
                           KIND "eval" -> {"cells": {cell: [image indices with results]}} of the report folder.
  lost KIND BEFORE AFTER   bytes of committed state lost between two `state` outputs (0 when AFTER holds all of
                           BEFORE): prints the number.
  same-ckpt A B            the checkpoints hold the same tensors, bit for bit, apart from the optimizer state, and the
                           same metadata apart from the save time. Exit 1 with the differences otherwise.
  same-eval A B            the report folders hold the same per-image results (progress.json without timings), the
                           same adversarial examples (adv/*.safetensors, bit for bit), the same results.json rows and
                           results.csv apart from timings and the environment, and the same example-grid PNGs.
"""
import csv
import io
import json
import os
import re
import struct
import sys
import zlib

TEMP = re.compile(r"\.tmp\d+$")


def safetensors(path):
    """(metadata, {name: (dtype, shape, bytes)}); raises ValueError when the file is not whole."""
    data = open(path, "rb").read()
    if len(data) < 8:
        raise ValueError(f"{len(data)} bytes, no header length")
    n = struct.unpack("<Q", data[:8])[0]
    if n > len(data) - 8:
        raise ValueError(f"header of {n} bytes in a file of {len(data)}")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    meta = header.pop("__metadata__", {})
    end = 0
    tensors = {}
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        b, f = e["data_offsets"]
        if b != end:
            raise ValueError(f"tensor {name} starts at {b}, expected {end}")
        end = f
        tensors[name] = (e["dtype"], e["shape"], body[b:f])
    if end != len(body):
        raise ValueError(f"data section has {len(body)} bytes, tensors cover {end}")
    return meta, tensors


def png_whole(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("no PNG signature")
    at, seen_end = 8, False
    while at < len(data):
        if at + 12 > len(data):
            raise ValueError("chunk cut short")
        length = struct.unpack(">I", data[at:at + 4])[0]
        kind = data[at + 4:at + 8]
        if at + 12 + length > len(data):
            raise ValueError(f"chunk {kind!r} cut short")
        crc = struct.unpack(">I", data[at + 8 + length:at + 12 + length])[0]
        if zlib.crc32(data[at + 4:at + 8 + length]) != crc:
            raise ValueError(f"chunk {kind!r} has a wrong CRC")
        at += 12 + length
        if kind == b"IEND":
            seen_end = True
            break
    if not seen_end or at != len(data):
        raise ValueError("no IEND at the end")


def check_file(path):
    name = os.path.basename(path)
    data = open(path, "rb").read()
    if name.endswith((".ckpt", ".safetensors")):
        safetensors(path)
    elif name.endswith(".json"):
        json.loads(data.decode("utf-8"))
    elif name.endswith(".csv"):
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
        if not rows or any(len(r) != len(rows[0]) for r in rows):
            raise ValueError("rows of different widths")
    elif name.endswith(".png"):
        png_whole(data)
    elif name.endswith((".md", ".txt", ".log")):
        data.decode("utf-8")


def walk(paths):
    for p in paths:
        if os.path.isdir(p):
            for d, _, files in os.walk(p):
                for f in sorted(files):
                    yield os.path.join(d, f)
        elif os.path.exists(p):
            yield p


def cmd_check(paths):
    bad, temps, n = [], {}, 0
    for f in walk(paths):
        if TEMP.search(f) or re.search(r"\.tmp\d+\.png$", f):
            temps[f] = os.path.getsize(f)
            continue
        if "/events.out.tfevents" in f or f.endswith(".tb"):  # TensorBoard logs: appended, not checked
            continue
        n += 1
        try:
            check_file(f)
        except Exception as e:  # noqa: BLE001 - any failure means the file is not whole
            bad.append(f"{f}: {type(e).__name__}: {e}")
    print(json.dumps({"bad": bad, "temporaries": temps, "files": n}))
    return 1 if bad else 0


def cmd_state(kind, path):
    if kind == "ckpt":
        if not os.path.exists(path):
            print(json.dumps({"iteration": -1}))
            return 0
        meta, _ = safetensors(path)
        print(json.dumps({"iteration": int(meta.get("iteration", "-1")), "bytes": os.path.getsize(path)}))
        return 0
    progress = os.path.join(path, "progress.json")
    if not os.path.exists(progress):
        print(json.dumps({"cells": {}, "bytes": 0}))
        return 0
    p = json.load(open(progress))
    print(json.dumps({"cells": {k: sorted(c["Indices"]) for k, c in p["Cells"].items()}, "bytes": os.path.getsize(progress)}))
    return 0


def cmd_lost(kind, before, after):
    b, a = json.loads(before), json.loads(after)
    if kind == "ckpt":
        print(b.get("bytes", 0) if a["iteration"] < b["iteration"] else 0)
        return 0
    lost = any(not set(idx) <= set(a["cells"].get(cell, [])) for cell, idx in b["cells"].items())
    print(b.get("bytes", 0) if lost else 0)
    return 0


def cmd_same_ckpt(a, b):
    ma, ta = safetensors(a)
    mb, tb = safetensors(b)
    diffs = []
    for name in sorted(set(ta) | set(tb)):
        if name == "optimizer.state":
            continue
        if ta.get(name) != tb.get(name):
            diffs.append(f"tensor {name} differs")
    for key in sorted(set(ma) | set(mb)):
        if key == "saved_utc":
            continue
        if ma.get(key) != mb.get(key):
            diffs.append(f"metadata {key}: {ma.get(key)!r} vs {mb.get(key)!r}")
    if diffs:
        print("; ".join(diffs[:10]))
        return 1
    print(f"same: {len(ta)} tensors")
    return 0


def results_without_timing(path):
    r = json.load(open(path))
    rows = r.get("rows", [])
    for row in rows:
        for k in list(row):
            if k.lower() in ("seconds", "secondsperimage"):
                del row[k]
    return rows, r.get("fingerprint"), r.get("config")


def csv_without_timing(path):
    rows = list(csv.reader(open(path, encoding="utf-8")))
    drop = [i for i, h in enumerate(rows[0]) if h == "seconds"]
    return [[v for i, v in enumerate(r) if i not in drop] for r in rows]


def cmd_same_eval(a, b):
    diffs = []
    pa, pb = json.load(open(os.path.join(a, "progress.json"))), json.load(open(os.path.join(b, "progress.json")))
    for p in (pa, pb):
        for c in p["Cells"].values():
            c.pop("Seconds", None)
    if pa["Cells"] != pb["Cells"]:
        diffs.append("progress.json per-image results differ")
    if pa["Fingerprint"] != pb["Fingerprint"]:
        diffs.append("progress.json fingerprints differ")
    names = lambda d, sub: sorted(os.listdir(os.path.join(d, sub))) if os.path.isdir(os.path.join(d, sub)) else []
    if names(a, "adv") != names(b, "adv"):
        diffs.append(f"adv/ files differ: {names(a, 'adv')} vs {names(b, 'adv')}")
    for f in names(a, "adv"):
        if f in names(b, "adv") and safetensors(os.path.join(a, "adv", f)) != safetensors(os.path.join(b, "adv", f)):
            diffs.append(f"adv/{f} differs")
    if results_without_timing(os.path.join(a, "results.json")) != results_without_timing(os.path.join(b, "results.json")):
        diffs.append("results.json rows differ")
    if csv_without_timing(os.path.join(a, "results.csv")) != csv_without_timing(os.path.join(b, "results.csv")):
        diffs.append("results.csv differs")
    pngs = lambda d: sorted(f for f in os.listdir(d) if f.endswith(".png"))
    if pngs(a) != pngs(b):
        diffs.append(f"PNG files differ: {pngs(a)} vs {pngs(b)}")
    for f in pngs(a):
        if f in pngs(b) and open(os.path.join(a, f), "rb").read() != open(os.path.join(b, f), "rb").read():
            diffs.append(f"{f} differs")
    if diffs:
        print("; ".join(diffs))
        return 1
    print(f"same: {sum(len(c['Indices']) for c in pa['Cells'].values())} image results, {len(names(a, 'adv'))} adversarial sets")
    return 0


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "check":
        return cmd_check(args)
    if cmd == "state":
        return cmd_state(*args)
    if cmd == "lost":
        return cmd_lost(*args)
    if cmd == "same-ckpt":
        return cmd_same_ckpt(*args)
    if cmd == "same-eval":
        return cmd_same_eval(*args)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
