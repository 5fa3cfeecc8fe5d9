#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A token server for docker-registry's token auth (distribution 2.8), for the tests.

usage: token-server.py PORTFILE KEY CERT ISSUER SERVICE USER PASSWORD LOGFILE

GET /token?service=S&scope=repository:NAME:ACTIONS... with Basic credentials USER:PASSWORD
gets a JWT (RS256, signed by `openssl dgst -sha256 -sign KEY`) whose x5c header carries CERT,
the certificate the registry trusts (its rootcertbundle); the claims grant what was asked.
Without credentials, or with wrong ones, it answers 401 with a registry-style JSON error.
Each request is logged to LOGFILE as "token user=U scope=S".
"""
import base64
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse

portfile, key, cert, issuer, service, user, password, logfile = sys.argv[1:9]
lock = threading.Lock()

der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], check=True, capture_output=True).stdout
x5c = base64.b64encode(der).decode()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(subject, scopes):
    access = []
    for s in scopes:
        parts = s.split(":")
        if len(parts) >= 3 and parts[0] == "repository":
            access.append({"type": "repository", "name": ":".join(parts[1:-1]), "actions": parts[-1].split(",")})
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "x5c": [x5c]}
    claims = {"iss": issuer, "sub": subject, "aud": service, "exp": now + 300, "nbf": now - 10, "iat": now,
              "jti": b64url(os.urandom(12)), "access": access}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input.encode(), check=True,
                         capture_output=True).stdout
    return signing_input + "." + b64url(sig)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj, headers=()):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        scopes = q.get("scope", [])
        who = "-"
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                who, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            except Exception:
                who, pw = "?", None
            ok = who == user and pw == password
        else:
            ok = False
        with lock, open(logfile, "a") as f:
            f.write(f"token user={who} scope={' '.join(scopes)} ok={ok}\n")
        if url.path != "/token":
            self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]})
            return
        if q.get("service", [None])[0] != service:
            self.reply(400, {"errors": [{"code": "DENIED", "message": "unknown service"}]})
            return
        if not ok:
            msg = "authentication required" if who == "-" else "incorrect username or password"
            self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": msg}]},
                       [("WWW-Authenticate", 'Basic realm="ctfs-token"')])
            return
        t = mint(who, scopes)
        self.reply(200, {"token": t, "access_token": t, "expires_in": 300})


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(portfile + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(portfile + ".tmp", portfile)
server.serve_forever()
