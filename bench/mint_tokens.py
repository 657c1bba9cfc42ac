#!/usr/bin/env python3
"""Mints HS256 user tokens for the benchmarks, byte for byte as `genflow token` does.

Starting `genflow token` once per user costs about 40-60 ms of process start-up; a thousand users
would take most of a minute on 2 cores. So the benchmark mints ONE token with `genflow token`,
passes it here with --check, and this script first proves it encodes exactly the same bytes
(same header, same claims, same signature, rebuilt from that token's own `exp` and `iat`), then
mints the rest with the same secret. The daemon still verifies every one of them.

    mint_tokens.py --secret S --users 1000 [--prefix u] [--ttl 7200] --check <token of --check-user>

Prints `user token` lines on stdout, users <prefix>0000 … in order.
"""
import argparse
import base64
import hashlib
import hmac
import json
import sys
import time


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint(secret, claims):
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":"), sort_keys=True).encode())
    payload = b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--secret", required=True)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--prefix", default="u")
    parser.add_argument("--ttl", type=int, default=7200)
    parser.add_argument("--check", required=True, help="a token minted by `genflow token` with the same secret")
    parser.add_argument("--check-user", required=True, help="the user that token was minted for")
    args = parser.parse_args()

    claims = json.loads(unb64(args.check.split(".")[1]))
    if claims.get("sub") != args.check_user:
        sys.exit(f"mint_tokens: the genflow token is for {claims.get('sub')!r}, not {args.check_user!r}")
    again = mint(args.secret, claims)
    if again != args.check:
        sys.exit("mint_tokens: this script does not reproduce `genflow token`'s bytes:\n"
                 f"  genflow: {args.check}\n  python:  {again}")
    now = int(time.time())
    for index in range(args.users):
        user = f"{args.prefix}{index:04d}"
        print(user, mint(args.secret, {"exp": now + args.ttl, "iat": now, "sub": user}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
