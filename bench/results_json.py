"""Writes a bench script's figures as one JSON document, for bench/report (BENCH_RESULTS).

    python3 bench/results_json.py OUT BENCH [--rows NAME FIELDS FILE]... [--set KEY=VALUE]... [--json KEY=FILE]...

--rows: FILE holds one table row a line, its cells separated by `|` (the scripts' `rows` arrays);
        FIELDS names the cells, comma-separated; the rows become a list of objects under NAME.
--set:  one value under KEY.
--json: FILE's JSON document under KEY.

A cell or value that reads as a number becomes one; `-`, `n/a` and empty cells become null.
Python standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys


def value(text: str):
    text = text.strip()
    if text in ("", "-", "n/a", "skipped"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("bench")
    parser.add_argument("--rows", nargs=3, action="append", default=[], metavar=("NAME", "FIELDS", "FILE"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", action="append", default=[], metavar="KEY=FILE")
    args = parser.parse_args()

    document: dict = {"bench": args.bench, "written_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    def put(key, value):
        if key in document:
            parser.error(f"{key} is given twice")
        document[key] = value

    for name, fields, path in args.rows:
        keys = fields.split(",")
        rows = []
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.rstrip("\n")
                if not line:
                    continue
                cells = line.split("|", len(keys) - 1)  # the last cell may hold a `|` (SQL text)
                cells += [""] * (len(keys) - len(cells))
                rows.append({key: (cells[i].strip() if i == 0 else value(cells[i])) for i, key in enumerate(keys)})
        put(name, rows)
    for item in args.set:
        key, _, text = item.partition("=")
        put(key, value(text))
    for item in args.json:
        key, _, path = item.partition("=")
        with open(path, encoding="utf-8") as handle:
            put(key, json.load(handle))

    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
