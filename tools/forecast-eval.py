#!/usr/bin/env python3
"""Measures the dashboard's forecast against seasonal naive on held-out days.

Usage: tools/forecast-eval.py http://127.0.0.1:8080 [JOB] [STEP_DAYS]

For every cut day from the 4th week of data to 30 days before the last complete day (every
STEP_DAYS days, default 3), asks GET /v1/jobs/JOB/daily?until=CUT&forecast=30, whose
`holdout` compares the forecast of the 30 days after CUT with their actual counts (mean
absolute error) and does the same for seasonal naive (same weekday last week). Prints one
line per cut and the means.
"""
import datetime, json, sys, urllib.request

base = sys.argv[1].rstrip("/")
job = sys.argv[2] if len(sys.argv) > 2 else "rides-per-day"
step = int(sys.argv[3]) if len(sys.argv) > 3 else 3

def get(path):
    with urllib.request.urlopen(base + path) as r:
        return json.load(r)

full = get(f"/v1/jobs/{job}/daily?days=366&forecast=0")
days = [a for a in full["actual"] if a["count"] > 0 or a["final"]]
first = next(i for i, a in enumerate(full["actual"]) if a["count"] > 0)
complete = [a["day"] for a in full["actual"][first:] if a["final"]]
cuts = complete[27:-30:step]
maes, naive = [], []
for cut in cuts:
    d = get(f"/v1/jobs/{job}/daily?until={cut}&forecast=30")
    h = d.get("holdout")
    if not h or h["days"] < 30:
        continue
    maes.append(h["mae"])
    naive.append(h["seasonal_naive_mae"])
    print(f"{cut} {d['method']} mae {h['mae']:.2f} seasonal-naive {h['seasonal_naive_mae']:.2f}")
if maes:
    wins = sum(1 for a, b in zip(maes, naive) if a < b)
    print(f"cuts {len(maes)}: mean MAE {sum(maes)/len(maes):.2f}, seasonal naive {sum(naive)/len(naive):.2f}, "
          f"ratio {sum(maes)/sum(naive):.3f}, better at {wins} of {len(maes)} cuts")
