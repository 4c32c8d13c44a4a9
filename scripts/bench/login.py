#!/usr/bin/env python3
"""Login timing and wrong-password floods against a running vpc-manager.

Usage: login.py ENDPOINT INI [--clients 32] [--seconds 10]

ENDPOINT is http://HOST:PORT/client/api; INI is the manager's cloudstack.ini
(admin keys). It creates a user `bench-<pid>` with a password, then prints:
  - the median time of a wrong-password login for that user and for an
    unknown user (the two must not differ if names cannot be guessed);
  - the median and 95th percentile of signed listZones calls alone, and
    while CLIENTS threads send wrong-password logins as fast as they can.
Standard library only.
"""
import base64, configparser, hashlib, hmac, json, os, statistics, sys, threading, time
import urllib.error, urllib.parse, urllib.request


def args():
    a = sys.argv[1:]
    opts = {"--clients": 32, "--seconds": 10}
    pos = []
    while a:
        x = a.pop(0)
        if x in opts:
            opts[x] = int(a.pop(0))
        else:
            pos.append(x)
    return pos[0], pos[1], opts["--clients"], opts["--seconds"]


ENDPOINT, INI, CLIENTS, SECONDS = args()
ini = configparser.ConfigParser()
ini.read(INI)
KEY, SECRET = ini["cloudstack"]["key"], ini["cloudstack"]["secret"]


def signed(command, **params):
    params.update(command=command, response="json", apiKey=KEY)
    query = "&".join(
        f"{k}={urllib.parse.quote(str(v), safe='*')}" for k, v in sorted(params.items())
    )
    digest = hmac.new(SECRET.encode(), query.lower().encode(), hashlib.sha1).digest()
    sig = urllib.parse.quote(base64.b64encode(digest).decode(), safe="")
    with urllib.request.urlopen(f"{ENDPOINT}?{query}&signature={sig}") as r:
        return json.load(r)


def login(username, password):
    body = urllib.parse.urlencode(
        {"command": "login", "username": username, "password": password,
         "domain": "/", "response": "json"}).encode()
    started = time.perf_counter()
    try:
        urllib.request.urlopen(ENDPOINT, data=body).read()
    except urllib.error.HTTPError as e:
        e.read()
    return (time.perf_counter() - started) * 1000


def timed_list_zones(n):
    out = []
    for _ in range(n):
        started = time.perf_counter()
        signed("listZones")
        out.append((time.perf_counter() - started) * 1000)
    return out


def p95(xs):
    return sorted(xs)[int(len(xs) * 0.95) - 1]


user = f"bench-{os.getpid()}"
signed("createAccount", username=user, password="right-password", email="b@x",
       firstname="B", lastname="U")
# Known first and last, so a warm-up favours neither.
known = [login(user, "wrong") for _ in range(21)]
unknown = [login(f"nobody-{os.getpid()}", "wrong") for _ in range(21)]
print(f"wrong-password login, known user:   median {statistics.median(known):.1f} ms")
print(f"wrong-password login, unknown user: median {statistics.median(unknown):.1f} ms")

alone = timed_list_zones(200)
print(f"listZones alone: median {statistics.median(alone):.1f} ms, p95 {p95(alone):.1f} ms, "
      f"max {max(alone):.1f} ms")
stop = time.time() + SECONDS
sent = [0]


def flood():
    while time.time() < stop:
        login(user, "wrong")
        sent[0] += 1


threads = [threading.Thread(target=flood) for _ in range(CLIENTS)]
for t in threads:
    t.start()
time.sleep(1)
busy = []
while time.time() < stop - 0.5:
    busy.extend(timed_list_zones(10))
for t in threads:
    t.join()
print(f"listZones under {CLIENTS} wrong-password clients: median "
      f"{statistics.median(busy):.1f} ms, p95 {p95(busy):.1f} ms, "
      f"mean {statistics.mean(busy):.1f} ms, max {max(busy):.1f} ms "
      f"({len(busy)} calls; {sent[0] / SECONDS:.0f} logins/s)")
