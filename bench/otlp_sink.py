#!/usr/bin/env python3
"""A minimal OTLP/HTTP receiver for bench/scaling: accepts POST /v1/traces (JSON), counts requests and
spans (by counting "spanId" keys, without parsing, to stay cheap on a 2-core machine), answers 200.

    otlp_sink.py COUNTS_FILE    prints its port on stdout, then writes "requests spans bytes" to
                                COUNTS_FILE after each request
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {"requests": 0, "spans": 0, "bytes": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        counts["requests"] += 1
        counts["spans"] += body.count(b'"spanId"')
        counts["bytes"] += len(body)
        with open(sys.argv[1], "w") as out:
            out.write(f'{counts["requests"]} {counts["spans"]} {counts["bytes"]}\n')
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
