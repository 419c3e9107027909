#!/usr/bin/env python3
"""POSTs a JSON Lines file to kappa serve in chunks over one keep-alive connection.
Usage: ingest.py HOST:PORT TOPIC FILE [LINES_PER_REQUEST]. Prints the seconds taken."""
import http.client, sys, time

host, port = sys.argv[1].rsplit(":", 1)
topic, path = sys.argv[2], sys.argv[3]
per = int(sys.argv[4]) if len(sys.argv) > 4 else 50_000
with open(path, "rb") as f:
    lines = f.readlines()
chunks = [b"".join(lines[i:i + per]) for i in range(0, len(lines), per)]
conn = http.client.HTTPConnection(host, int(port), timeout=600)
start = time.monotonic()
written = 0
for body in chunks:
    conn.request("POST", f"/v1/topics/{topic}/records", body=body, headers={"Content-Type": "application/x-ndjson"})
    r = conn.getresponse()
    answer = r.read()
    if r.status != 200:
        sys.exit(f"HTTP {r.status}: {answer[:500]!r}")
    written += int(answer.split(b'"written":')[1].split(b",")[0])
elapsed = time.monotonic() - start
if written != len(lines):
    sys.exit(f"wrote {written} of {len(lines)} lines")
print(f"{elapsed:.3f}")
