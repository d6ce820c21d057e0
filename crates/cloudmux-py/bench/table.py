"""Prints bench.py's JSON lines (one file) as a Markdown table with ratios."""

import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1])]
print()
print(f"In {sys.argv[2]}:")
print()
print("| contender | elements | workers | exactly once | new + session s | workers s | done s | total s | elements/s | µs/element |")
print("|---|--:|--:|---|--:|--:|--:|--:|--:|--:|")
for r in rows:
    print(
        f"| {r['contender']} | {r['elements']:,} | {r['workers']} | {'yes' if r['exactly_once'] else 'NO'} "
        f"| {r['new_and_session_s']} | {r['workers_s']} | {r['done_s']} | {r['total_s']} "
        f"| {r['elements_per_s']:,.0f} | {r['us_per_element']} |"
    )
by = {r["contender"]: r for r in rows}
py, orig, cli = by["cloudmux"], by["cloudly"], by["cloudmux work"]
print()
print(f"cloudmux for Python vs cloudly: {orig['total_s'] / py['total_s']:.1f}x faster end to end")
print(
    f"Python layer over `cloudmux work`: {py['us_per_element'] - cli['us_per_element']:+.1f} µs per element "
    f"({py['total_s'] / cli['total_s']:.2f}x the command's time)"
)
