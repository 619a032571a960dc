#!/usr/bin/python3
"""Sends one model's golden input to outpostd back to back (one keep-alive connection) until
STOPFILE exists, then writes {"sent", "failed", "codes", "first_failures", "failure_times"}
(wall-clock seconds of the first 100 failures) to OUT.json.

    load_client.py PORT MODEL INPUT.npy STOPFILE OUT.json

Used by model_swap.sh to count failed requests across model-only updates. Standard library only.
"""
import ast
import http.client
import json
import os
import struct
import sys
import time


def read_npy(path):
    b = open(path, "rb").read()
    if b[6] == 1:
        hlen, start = struct.unpack("<H", b[8:10])[0], 10
    else:
        hlen, start = struct.unpack("<I", b[8:12])[0], 12
    header = ast.literal_eval(b[start:start + hlen].decode())
    assert header["descr"] == "<f4" and not header["fortran_order"], header
    data = b[start + hlen:]
    return list(header["shape"]), list(struct.unpack("<%df" % (len(data) // 4), data))


def main():
    port, model, npy, stop, out = sys.argv[1:6]
    shape, data = read_npy(npy)
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
    conn.request("GET", "/v2/models/" + model)
    name = json.loads(conn.getresponse().read())["inputs"][0]["name"]
    body = json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": "FP32",
                                   "data": data}]})
    sent, failed, codes, first, times = 0, 0, {}, [], []
    while not os.path.exists(stop):
        sent += 1
        try:
            conn.request("POST", "/v2/models/%s/infer" % model, body,
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            text = r.read()
            code = str(r.status)
        except (OSError, http.client.HTTPException) as e:
            code, text = "transport", str(e).encode()
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
        codes[code] = codes.get(code, 0) + 1
        if code != "200":
            failed += 1
            if len(times) < 100:
                times.append(time.time())
            if len(first) < 5:
                first.append(code + " " + text[:200].decode(errors="replace"))
    json.dump({"sent": sent, "failed": failed, "codes": codes, "first_failures": first,
               "failure_times": times},
              open(out, "w"))


if __name__ == "__main__":
    main()
