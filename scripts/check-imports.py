#!/usr/bin/env python3
"""Fails when Package.swift and the code disagree about what a module uses.

For every Swift target, the modules its files import must be exactly the dependencies Package.swift
declares for it: an import that is not declared builds only by accident (through another module's
dependency), and a declared dependency nobody imports is a false map of the code. Modules of the
toolchain (Foundation, Glibc, Synchronization, Testing, ...) need no declaration. A test target may
declare an executable it does not import: that is how it gets the binary built that it runs.

Usage: scripts/check-imports.py [package-dump.json]   (default: runs `swift package dump-package`)
"""
import json
import os
import re
import subprocess
import sys

TOOLCHAIN = {"Foundation", "FoundationEssentials", "Glibc", "Dispatch", "Synchronization", "Testing", "XCTest", "_Concurrency", "PackagePlugin"}
IMPORT = re.compile(r"^(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|package|internal|fileprivate|private)\s+)?import\s+(?:(?:struct|class|enum|protocol|func|var|let|typealias)\s+)?([A-Za-z_][A-Za-z0-9_]*)", re.M)


def declared(target):
    names = set()
    for dependency in target["dependencies"]:
        for kind in ("byName", "target", "product"):
            if kind in dependency:
                names.add(dependency[kind][0])
    return names


def imported(directory):
    names = set()
    for root, _, files in os.walk(directory):
        for name in files:
            if name.endswith(".swift"):
                with open(os.path.join(root, name), encoding="utf-8") as source:
                    names.update(IMPORT.findall(source.read()))
    return names - TOOLCHAIN


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if len(sys.argv) > 1:
        with open(sys.argv[1], encoding="utf-8") as dump:
            package = json.load(dump)
    else:
        output = subprocess.run(["swift", "package", "dump-package"], cwd=root, check=True, capture_output=True, text=True)
        package = json.loads(output.stdout)
    executables = {t["name"] for t in package["targets"] if t["type"] == "executable"}
    problems = []
    for target in package["targets"]:
        if target["type"] == "system":
            continue
        directory = os.path.join(root, target.get("path") or ("Tests" if target["type"] == "test" else "Sources"), "" if target.get("path") else target["name"])
        uses = imported(directory)
        if not uses and not any(f.endswith(".swift") for _, _, fs in os.walk(directory) for f in fs):
            continue  # a C target: its includes are its own business
        declares = declared(target)
        for name in sorted(uses - declares):
            problems.append(f"{target['name']}: imports {name} but Package.swift does not declare it")
        for name in sorted(declares - uses):
            if target["type"] == "test" and name in executables:
                continue
            problems.append(f"{target['name']}: Package.swift declares {name} but no file imports it")
    for problem in problems:
        print(f"check-imports: {problem}", file=sys.stderr)
    if problems:
        print(f"check-imports: {len(problems)} mismatch(es) between Package.swift and the imports", file=sys.stderr)
        return 1
    print(f"check-imports: {sum(1 for t in package['targets'] if t['type'] != 'system')} targets, Package.swift matches the imports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
