#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A reverse proxy in front of a test registry that misbehaves on purpose, once.

usage: registry-proxy.py PORTFILE UPSTREAM MODES LOGFILE

UPSTREAM is host:port of a plain-HTTP registry; MODES a comma-separated list of
  drop      the first full blob download sends half its body, then the connection drops
  stall     the first full blob download sends half its body, then stalls for 20 s and drops
  429       the first manifest request is answered 429 with Retry-After: 1
  503       the first blob request is answered 503
  flip      every blob body is sent with one byte changed in the middle
  redirect  /v2/ wants Basic credentials (any); blob requests to 127.0.0.1 are redirected to
            localhost (another origin), where they are served without asking
  slow      every full blob download over 4 KiB waits 1.5 s before its body
  trickle   every blob body is sent at 16 MiB/s, in 256 KiB pieces (a pull's time is then
            mostly its downloads, the same from one pull to the next)
Every request is logged to LOGFILE as "METHOD PATH host=H range=R auth=yes|no".
The port it listens on (127.0.0.1) is written to PORTFILE.
"""
import http.client
import http.server
import os
import socket
import sys
import threading
import time

portfile, upstream, modes, logfile = sys.argv[1], sys.argv[2], set(sys.argv[3].split(",")), sys.argv[4]
lock = threading.Lock()
done = set()  # faults already injected


def once(name):
    with lock:
        if name in done:
            return False
        done.add(name)
        return True


def log(line):
    with lock, open(logfile, "a") as f:
        f.write(line + "\n")


HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authenticate"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, status, body, headers=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        host = self.headers.get("Host", "")
        auth = "yes" if self.headers.get("Authorization") else "no"
        log(f"{self.command} {self.path} host={host} range={self.headers.get('Range', '-')} auth={auth}")
        path = self.path.split("?")[0]
        is_blob = "/blobs/sha256:" in path
        is_manifest = "/manifests/" in path

        if "redirect" in modes:
            if host.startswith("127.0.0.1") and auth == "no":
                self.send_json(401, '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                               [("WWW-Authenticate", 'Basic realm="proxy"')])
                return
            if is_blob and host.startswith("127.0.0.1"):
                port = host.rsplit(":", 1)[1]
                self.send_response(307)
                self.send_header("Location", f"http://localhost:{port}{path}?redirected=1")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        if "429" in modes and is_manifest and once("429"):
            self.send_json(429, '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}',
                           [("Retry-After", "1")])
            return
        if "503" in modes and is_blob and once("503"):
            self.send_json(503, '{"errors":[{"code":"UNAVAILABLE","message":"try again"}]}')
            return

        conn = http.client.HTTPConnection(upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP and k.lower() != "host"}
        if "redirect" in modes:
            headers.pop("Authorization", None)  # the upstream registry is anonymous
        conn.request(self.command, self.path.replace("?redirected=1", ""), headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        if is_blob and resp.status == 200 and "flip" in modes and len(body) > 0:
            mid = len(body) // 2
            body = body[:mid] + bytes([body[mid] ^ 0x01]) + body[mid + 1:]
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        full_blob = is_blob and resp.status == 200 and len(body) > 4096
        if full_blob and "drop" in modes and once("drop"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if full_blob and "slow" in modes:
            time.sleep(1.5)
        if full_blob and "stall" in modes and once("stall"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(20)
            self.close_connection = True
            return
        if "trickle" in modes and is_blob:
            piece = 256 * 1024
            for off in range(0, len(body), piece):
                self.wfile.write(body[off:off + piece])
                self.wfile.flush()
                time.sleep(piece / (16 * 1024 * 1024))
            return
        self.wfile.write(body)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(portfile + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(portfile + ".tmp", portfile)
server.serve_forever()
