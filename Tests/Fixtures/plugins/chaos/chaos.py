#!/usr/bin/env python3
"""A plugin that misbehaves on request (config.mode), for the plugin host's tests:
ok: answers with progress, an event and a result; crash_once: exits mid-call the first time
(marker file absent), answers once restarted; garbage: writes non-protocol lines and no answer;
silent: never answers; unknown_id: answers another id; slow: answers after ms."""
import json
import os
import sys
import threading
import time

lock = threading.Lock()


def send(message):
    with lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def invoke(message):
    call_id, config = message["id"], message.get("config") or {}
    mode = config.get("mode")
    if mode == "ok":
        send({"type": "progress", "id": call_id, "fraction": 0.5, "message": "half way"})
        send({"type": "event", "id": call_id, "event": "chaos.note", "data": {"pid": os.getpid()}})
        send({"type": "result", "id": call_id, "output": {"pid": os.getpid(), "input": message.get("input"), "context": message.get("context")},
              "usage": {"total_tokens": 7}})
    elif mode == "crash_once":
        marker = config["marker"]
        if not os.path.exists(marker):
            open(marker, "w").write(str(os.getpid()))
            send({"type": "progress", "id": call_id, "fraction": 0.1, "message": "about to crash"})
            time.sleep(0.2)
            os._exit(3)
        send({"type": "result", "id": call_id, "output": {"pid": os.getpid(), "survived": True}})
    elif mode == "garbage":
        sys.stdout.write("this is not json\n{\"no\": \"type\"}\n")
        sys.stdout.flush()
    elif mode == "silent":
        pass
    elif mode == "unknown_id":
        send({"type": "result", "id": "no-such-call", "output": {}})
    elif mode == "slow":
        if config.get("marker"):  # the call reached this process
            open(config["marker"], "w").write(str(os.getpid()))
        time.sleep(config.get("ms", 0) / 1000)
        send({"type": "result", "id": call_id, "output": {"slept_ms": config.get("ms", 0), "pid": os.getpid()}})


send({"type": "hello", "protocol": "genflow-plugin/1", "stages": ["chaos.call"]})
for line in sys.stdin:
    message = json.loads(line)
    if message.get("type") == "invoke":
        threading.Thread(target=invoke, args=(message,), daemon=True).start()
    elif message.get("type") == "shutdown":
        break
