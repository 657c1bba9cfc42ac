#!/usr/bin/env python3
"""Says hello with other stages than its manifest declares."""
import json
import sys

print(json.dumps({"type": "hello", "protocol": "genflow-plugin/1", "stages": ["liar.one", "liar.three"]}), flush=True)
for line in sys.stdin:
    pass
