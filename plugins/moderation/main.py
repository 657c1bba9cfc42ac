#!/usr/bin/env python3
"""genflow-plugin/1 moderation plugin, Python standard library only.

Reads one JSON message per line on stdin, writes one per line on stdout (stdout carries protocol
only; diagnostics go to stderr, which the daemon logs). Calls run on threads, so several may be in
flight; a `cancel` marks its call so it answers nothing more; `shutdown` ends the process."""
import json
import re
import sys
import threading

DEFAULT_BLOCKLIST = ["violence", "gore", "weapon", "hate"]
STAGES = ["moderation.check"]

write_lock = threading.Lock()
cancelled = set()


def send(message):
    with write_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def check(call_id, config):
    text = config.get("text", "")
    blocklist = [word.lower() for word in config.get("blocklist") or DEFAULT_BLOCKLIST]
    words = re.findall(r"[\w']+", text.lower())
    matches = []
    for index, word in enumerate(words):
        if word in blocklist and word not in matches:
            matches.append(word)
        if index % 200 == 0 and words:
            send({"type": "progress", "id": call_id, "fraction": index / len(words), "message": f"checked {index} words"})
    if call_id in cancelled:
        return
    if matches and config.get("reject"):
        send({"type": "error", "id": call_id, "class": "invalid_request", "message": "the text uses blocked words: " + ", ".join(matches)})
        return
    send({"type": "event", "id": call_id, "event": "moderation.checked", "data": {"flagged": bool(matches)}})
    send({"type": "result", "id": call_id, "output": {"flagged": bool(matches), "matches": matches, "words": len(words)}})


def invoke(message):
    call_id = message.get("id")
    try:
        if message.get("stage") not in STAGES:
            send({"type": "error", "id": call_id, "class": "invalid_request", "message": f"unknown stage {message.get('stage')}"})
            return
        check(call_id, message.get("config") or {})
    except Exception as error:  # every invoke gets exactly one answer
        send({"type": "error", "id": call_id, "class": "internal", "message": f"moderation failed: {error}"})
    finally:
        cancelled.discard(call_id)


def main():
    send({"type": "hello", "protocol": "genflow-plugin/1", "stages": STAGES})
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            print(f"not JSON: {line[:80]!r}", file=sys.stderr)
            continue
        kind = message.get("type")
        if kind == "invoke":
            threading.Thread(target=invoke, args=(message,), daemon=True).start()
        elif kind == "cancel":
            cancelled.add(message.get("id"))
        elif kind == "shutdown":
            break
    # stdin closed or shutdown: finished calls have answered; exit.


if __name__ == "__main__":
    main()
