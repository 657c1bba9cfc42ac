#!/usr/bin/python3
"""The verdict of scripts/faults/api-fuzz, from the reports schemathesis wrote; and the document
its bodies run uses.

usage: api_fuzz_report.py --work DIR --runs user,operator,bodies --spec FILE --daemon-alive true|false
                          --crash-lines FILE --daemon-log FILE --schemathesis VERSION --seconds S
       api_fuzz_report.py with-bodies SPEC PIPELINES_JSON OUT

with-bodies: the daemon's OpenAPI document has no request bodies and no links. OUT keeps the POST
operations whose summary names their body (`Submit a job: {pipeline, input, priority?, ...}.`), each
with an object schema of those keys (`?` = optional; types as the handlers check them, FIELD_SCHEMAS)
plus a required `user_id` (the bodies run is the operator's, who acts for a user); a body with
`pipeline` is one alternative per loaded pipeline, with that pipeline's input schema (PIPELINES_JSON:
name -> schema, from GET /v1/pipelines/{name}). It also keeps the operations under the created
resource (`/v1/jobs/{id}...`), linked from the creation's `$response.body#/job/id`, so schemathesis'
stateful phase can chain them.
"""
import argparse
import glob
import json
import os
import re
import sys
from collections import Counter, defaultdict
from urllib.parse import unquote, urlsplit


def load(pattern):
    """The newest file matching pattern, parsed; None when there is none or it is unreadable."""
    paths = sorted(glob.glob(pattern), key=os.path.getmtime)
    if not paths:
        return None
    try:
        with open(paths[-1], encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def operation_matcher(spec_path):
    """A function from (method, path) to the document's `METHOD /template`, None when none fits."""
    try:
        with open(spec_path, encoding="utf-8") as file:
            paths = json.load(file).get("paths", {})
    except (OSError, ValueError):
        paths = {}
    patterns = []
    for template, methods in paths.items():
        regex = "^" + re.sub(r"\\\{[^}]*\\\}", "[^/]*", re.escape(template)) + "$"
        # Fixed paths first, so /v1/prompts/stats is not taken for /v1/prompts/{id}.
        patterns.append((template.count("{"), re.compile(regex), template, {m.upper() for m in methods}))
    patterns.sort(key=lambda p: p[0])

    def match(method, path):
        for _, regex, template, methods in patterns:
            if regex.match(path) and method in methods:
                return f"{method} {template}"
        return None

    return match


def clip(text, limit=300):
    text = text if isinstance(text, str) else json.dumps(text)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


def request_text(request):
    """METHOD path?query [body], as sent (the query percent-encoded as on the wire)."""
    url = urlsplit(request.get("url", ""))
    text = f"{request.get('method', '?')} {url.path}" + (f"?{url.query}" if url.query else "")
    body = (request.get("postData") or {}).get("text")
    if body:
        text += f" body={clip(body, 1000)}"
    return text


# The checks the handlers make (Sources/GenflowAPI/Routes.swift), as schemas for valid cases; a
# field not named here takes any JSON value.
FIELD_SCHEMAS = {
    "input": {"type": "object"},
    "priority": {"type": "integer", "minimum": -1000, "maximum": 1000},
    "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200},
    "run_at": {"type": "string", "format": "date-time"},
    "user_id": {"type": "string", "minLength": 1, "maxLength": 200},
    "amount": {"type": "integer", "minimum": 1, "maximum": 1000000000},
    "reason": {"type": "string"},
}


def with_bodies(spec_path, pipelines_path, out_path):
    with open(spec_path, encoding="utf-8") as file:
        spec = json.load(file)
    with open(pipelines_path, encoding="utf-8") as file:
        pipelines = json.load(file)   # name -> the pipeline's input schema
    paths = spec.get("paths", {})
    kept = {}
    for path, methods in paths.items():
        post = methods.get("post")
        fields = re.search(r"\{([^{}]*)\}", (post or {}).get("summary", "")) if "{" not in path else None
        if not post or not fields:
            continue
        names = [f.strip() for f in fields.group(1).split(",") if f.strip()]
        properties = {n.rstrip("?"): FIELD_SCHEMAS.get(n.rstrip("?"), {}) for n in names}
        properties.setdefault("user_id", FIELD_SCHEMAS["user_id"])   # operators act for a user
        required = sorted({n for n in names if not n.endswith("?")} | {"user_id"})
        body = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
        if "pipeline" in properties and pipelines:
            # One alternative per loaded pipeline, with that pipeline's own input schema.
            body = {"oneOf": [dict(body, properties=dict(properties, pipeline={"const": name}, input=dict(schema, type="object")))
                              for name, schema in sorted(pipelines.items())]}
        post = dict(post)
        post["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        # /v1/jobs answers {"job": {"id": ...}}: link to every operation under /v1/jobs/{id}.
        resource = path.rstrip("/").rsplit("/", 1)[-1].rstrip("s")
        children = {p: m for p, m in paths.items() if re.fullmatch(re.escape(path) + r"/\{[^}/]+\}(/.*)?", p)}
        links = {}
        for child, child_methods in children.items():
            parameter = re.search(r"\{([^}]+)\}", child[len(path):]).group(1)
            for method, operation in child_methods.items():
                links[operation["operationId"]] = {"operationId": operation["operationId"],
                                                   "parameters": {f"path.{parameter}": f"$response.body#/{resource}/{parameter}"}}
                kept.setdefault(child, {})[method] = operation
        if links:
            responses = dict(post["responses"])
            for status in [s for s in responses if s.startswith("2")]:
                responses[status] = dict(responses[status], links=links)
            post["responses"] = responses
        kept.setdefault(path, {})["post"] = post
    spec["paths"] = kept
    with open(out_path, "w", encoding="utf-8") as file:
        json.dump(spec, file, indent=1)
    return 0


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "with-bodies":
        return with_bodies(sys.argv[2], sys.argv[3], sys.argv[4])
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", required=True)
    parser.add_argument("--runs", required=True)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--daemon-alive", required=True, choices=["true", "false"])
    parser.add_argument("--crash-lines", required=True)
    parser.add_argument("--daemon-log", required=True)
    parser.add_argument("--schemathesis", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()

    operation_of = operation_matcher(args.spec)
    daemon_alive = args.daemon_alive == "true"
    failures, tested, cases, server_errors, no_response = [], set(), 0, 0, 0
    reported_operations = 0
    lines, listed = [], []   # summary lines; every 5xx exchange, in full
    for name in args.runs.split(","):
        run_dir = os.path.join(args.work, name)
        if not os.path.isdir(run_dir):
            failures.append(f"{name} run: not run")
            lines.append(f"  {name}: not run")
            continue
        try:
            with open(os.path.join(args.work, f"{name}.status"), encoding="utf-8") as file:
                status = int(file.read().strip() or -1)
        except (OSError, ValueError):
            status = -1
        report = load(os.path.join(run_dir, "json-*.json"))
        har = load(os.path.join(run_dir, "har-*.json"))
        entries = (har or {}).get("log", {}).get("entries", [])
        if report is None or har is None:
            failures.append(f"{name} run: schemathesis wrote no {'JSON report' if report is None else 'HAR'} (exit {status})")
        if report is not None and not report.get("complete", False):
            failures.append(f"{name} run: incomplete (stop reason {report.get('stop_reason')}, exit {status})")
        if status not in (0, 1):
            failures.append(f"{name} run: schemathesis exited {status}")

        run_cases = (report or {}).get("test_cases", {}).get("generated", len(entries))
        cases += run_cases
        statuses = Counter()
        five_xx = defaultdict(list)   # (operation, status) -> requests as sent
        silent = defaultdict(list)    # operation -> requests answered by nothing
        for entry in entries:
            request, response = entry.get("request", {}), entry.get("response", {})
            code = int(response.get("status") or 0)
            statuses[code] += 1
            method = request.get("method", "?")
            path = urlsplit(request.get("url", "")).path
            operation = operation_of(method, unquote(path))
            if operation is not None:
                tested.add(operation)
            if code >= 500:
                answer = (response.get("content") or {}).get("text") or ""
                five_xx[(operation or f"{method} {path}", code)].append(request_text(request))
                listed.append(f"{name}: {request_text(request)} -> {code} {clip(answer, 200)}")
            elif code == 0:
                silent[operation or f"{method} {path}"].append(request_text(request))
        run_server_errors = sum(len(v) for v in five_xx.values())
        if har is None and report is not None:
            # No HAR: fall back on schemathesis' own count of the server-error check's failures.
            run_server_errors = sum(f.get("count", 0) for f in report.get("failures", []) if "server error" in f.get("title", "").lower())
            if run_server_errors:
                failures.append(f"{name} run: {run_server_errors} server errors (no HAR to list them)")
        server_errors += run_server_errors
        no_response += sum(len(v) for v in silent.values())
        for (operation, code), requests in sorted(five_xx.items()):
            failures.append(f"{name}: {operation} -> {code} x{len(requests)}, e.g. {clip(min(requests, key=len), 160)}")
        if silent:
            requests = [r for group in silent.values() for r in group]
            nul = sum(1 for r in requests if "%00" in r.partition("?")[2].upper())
            failures.append(f"{name}: {len(requests)} requests got no response (connection closed) on {len(silent)} operations, "
                            f"{'all' if nul == len(requests) else nul} with %00 in the query, e.g. {clip(min(requests, key=len), 120)}")
        other_errors = [e for e in (report or {}).get("errors", []) if e.get("title") != "Network Error"]
        for error in other_errors:
            failures.append(f"{name} run: schemathesis error: {error.get('title')} x{error.get('count')}")

        histogram = ", ".join(f"{code or 'none'}: {n}" for code, n in sorted(statuses.items()))
        ops = (report or {}).get("operations") or {}
        reported_operations = max(reported_operations, ops.get("tested") or 0)
        phases = (report or {}).get("phases") or {}
        ran = [p for p, s in phases.items() if s.get("status") != "skip"]
        lines.append(f"  {name}: {run_cases} cases on {ops.get('tested', '?')}/{ops.get('selected', '?')} operations "
                     f"(phases {', '.join(ran) or '-'}; seed {(report or {}).get('seed')}); statuses {histogram}")
        missing_auth = (report or {}).get("warnings", {}).get("missing_auth") or []
        if missing_auth:
            lines.append(f"    only 401/403 for: {', '.join(missing_auth)}")

    crash_lines = []
    if os.path.exists(args.crash_lines):
        with open(args.crash_lines, encoding="utf-8", errors="replace") as file:
            crash_lines = [line.strip() for line in file if line.strip()]
    for line in crash_lines[:10]:
        failures.append(f"daemon log: {clip(line, 200)}")
    if not daemon_alive:
        failures.append("daemon died or stopped answering GET /healthz")
    # Why the 5xx happened: the daemon logs each failed request with its route and error.
    reasons = Counter()
    if os.path.exists(args.daemon_log):
        with open(args.daemon_log, encoding="utf-8", errors="replace") as file:
            for line in file:
                found = re.search(r"genflow\.error=(.*) genflow\.route=(\S+ \S+) .*request failed", line)
                if found:
                    error = re.sub(r'"[^"]*"', '"…"', found.group(1))   # quoted values vary per case
                    reasons[f"{found.group(2)}: {error}"] += 1
    for reason, count in reasons.most_common(10):
        failures.append(f"daemon log, request failed x{count}: {clip(reason, 200)}")

    print(f"API fuzz (schemathesis {args.schemathesis}, {args.seconds:.0f} s):")
    for line in lines:
        print(line)
    print(f"  server errors (5xx): {server_errors}; requests the daemon closed without a response: {no_response}; "
          f"daemon {'alive, /healthz 200' if daemon_alive else 'DEAD'}; crash lines in its log: {len(crash_lines)}")
    print("  note: the daemon's OpenAPI document has no request-body schemas and no links, so the user and operator")
    print("  runs send POSTs without bodies, skip the stateful phase and mostly meet 404 on {id} paths; the bodies run")
    print("  (if run) adds typed bodies for POST /v1/jobs and /v1/tokens/credit and links to /v1/jobs/{id}/...")
    for failure in failures:
        print(f"  - {failure}")
    if listed:
        print(f"  every 5xx exchange ({len(listed)}):")
        for line in listed[:40]:
            print(f"    {line}")
        if len(listed) > 40:
            print(f"    … and {len(listed) - 40} more (API_FUZZ_KEEP=1 keeps the HAR files)")
    verdict = {
        "operations": reported_operations or len(tested),
        "cases": cases,
        "server_errors": server_errors,
        "failures": failures,
        "daemon_alive": daemon_alive,
        "schemathesis": args.schemathesis,
        "seconds": round(args.seconds),
        "no_response": no_response,
    }
    print(json.dumps(verdict, ensure_ascii=False))
    return 1 if server_errors > 0 or not daemon_alive else 0


if __name__ == "__main__":
    sys.exit(main())
