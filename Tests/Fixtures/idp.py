#!/usr/bin/python3
"""A local identity provider for the tests: RS256, ES256 and EdDSA keys published as a JWKS, and
tokens minted with PyJWT (Debian's python3-jwt). Prints its port, then serves:

  GET  /jwks.json           the current public keys (kids "<alg>-<generation>")
  POST /rotate              a new generation of keys; the old ones leave the JWKS
  POST /fail?on=1           /jwks.json answers 500 (on=0: answers again)
  GET  /fetches             how many times /jwks.json was read
  GET  /token?alg=RS256&sub=ann&aud=genflow&iss=https://idp.test/&exp_in=600[&kid=…][&key=previous][&claims={…}]
                            a token signed with the current (or previous) key of that algorithm;
                            alg=none: unsigned; alg=HS256-public: HS256 keyed with the RS256 public
                            key's PEM (the algorithm confusion attack)
Exits when stdin closes."""
import base64
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ALGORITHMS = {
    "RS256": (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), jwt.algorithms.RSAAlgorithm),
    "ES256": (lambda: ec.generate_private_key(ec.SECP256R1()), jwt.algorithms.ECAlgorithm),
    "EdDSA": (lambda: ed25519.Ed25519PrivateKey.generate(), jwt.algorithms.OKPAlgorithm),
}
state = {"generation": 1, "keys": {}, "previous": {}, "fetches": 0, "failing": False}


def generate():
    state["previous"] = state["keys"]
    state["keys"] = {alg: (f"{alg}-{state['generation']}", make()) for alg, (make, _) in ALGORITHMS.items()}


def jwks():
    keys = []
    for alg, (kid, private) in state["keys"].items():
        jwk = json.loads(ALGORITHMS[alg][1].to_jwk(private.public_key()))
        if alg == "ES256":
            # RFC 7518 6.2.1.2: coordinates are the full 32 bytes. PyJWT 2.6 drops leading zero
            # bytes (one key in 128), which a strict reader such as CryptoKit refuses.
            numbers = private.public_key().public_numbers()
            jwk["x"], jwk["y"] = b64(numbers.x.to_bytes(32, "big")), b64(numbers.y.to_bytes(32, "big"))
        jwk.update({"kid": kid, "alg": alg, "use": "sig"})
        keys.append(jwk)
    return {"keys": keys}


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(query):
    alg = query.get("alg", "RS256")
    now = int(time.time())
    claims = {"sub": query.get("sub", "ann"), "iat": now, "exp": now + int(query.get("exp_in", "600"))}
    if "aud" in query:
        claims["aud"] = query["aud"]
    if "iss" in query:
        claims["iss"] = query["iss"]
    claims.update(json.loads(query.get("claims", "{}")))
    claims = {k: v for k, v in claims.items() if v is not None}
    if alg == "none":
        return f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}."
    if alg == "HS256-public":
        kid, private = state["keys"]["RS256"]
        pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        signing = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': kid}).encode())}.{b64(json.dumps(claims).encode())}"
        return f"{signing}.{b64(hmac.new(pem, signing.encode(), hashlib.sha256).digest())}"
    keys = state["previous"] if query.get("key") == "previous" else state["keys"]
    kid, private = keys[alg]
    return jwt.encode(claims, private, algorithm=alg, headers={"kid": query.get("kid", kid)})


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/jwks.json":
            state["fetches"] += 1
            if state["failing"]:
                return self.reply(500, '{"error": "down"}')
            return self.reply(200, json.dumps(jwks()))
        if url.path == "/fetches":
            return self.reply(200, json.dumps({"fetches": state["fetches"]}))
        if url.path == "/token":
            return self.reply(200, token(query), "text/plain")
        self.reply(404, "{}")

    def do_POST(self):
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/rotate":
            state["generation"] += 1
            generate()
            return self.reply(200, json.dumps({"generation": state["generation"]}))
        if url.path == "/fail":
            state["failing"] = query.get("on", "1") == "1"
            return self.reply(200, "{}")
        self.reply(404, "{}")


generate()
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_address[1], flush=True)
sys.stdin.read()
