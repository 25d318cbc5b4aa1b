"""Makes the company the fuzzer works on, through the API as a new company would be made:
the reference plugins with their case files, a chain, customers and a first run. Then checks
that the server's OpenAPI document is a valid OpenAPI 3.1 document."""

import json
import sys
import time
import urllib.error
import urllib.request

base, token, plugins, cases = sys.argv[1:5]


def call(method, path, body=None, content_type="application/json", headers=None):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", content_type)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path}: {e.code} {e.read().decode()}")


for _ in range(300):
    try:
        urllib.request.urlopen(base + "/healthz", timeout=2)
        break
    except OSError:
        time.sleep(0.1)
else:
    raise SystemExit("the server did not come up")

with urllib.request.urlopen(base + "/openapi.json") as r:
    doc = json.load(r)
from openapi_spec_validator import validate  # noqa: E402

validate(doc)
assert doc["openapi"].startswith("3.1"), doc["openapi"]
print(f"openapi.json: a valid OpenAPI {doc['openapi']} document, {len(doc['paths'])} paths")

call("POST", "/v1/companies", {"slug": "fuzz", "name": "Fuzz Heat", "time_zone": "Asia/Harbin",
                               "seasons": [{"start": "2025-10-20", "end": "2026-04-20"}]})
digests = {}
for name in ["season", "area_tariff"]:
    with open(f"{plugins}/{name}.wasm", "rb") as f:
        _, p = call("POST", "/v1/companies/fuzz/plugins", f.read(), "application/wasm")
    digests[name] = p["digest"]
for digest in digests.values():
    with open(f"{cases}/w1.toml", "rb") as f:
        call("PUT", f"/v1/companies/fuzz/plugins/{digest}/cases/w1.toml", f.read(),
             "application/toml")
call("POST", "/v1/companies/fuzz/chains", {"effective_from": "2025-10-01", "entries": [
    {"plugin": "season", "params": {"start": "2025-10-20", "end": "2026-04-20"}},
    {"plugin": "area-tariff", "params": {"area_basis": "usable",
                                         "prices": {"residential": "38.32", "non-residential": "43.3"}}}]})
call("POST", "/v1/companies/fuzz/imports/customers",
     b"customer_id,class,status,low_income,building_area,usable_area\n"
     b"W1,residential,active,false,75,60.00\nW2,non-residential,active,false,90,80\n", "text/csv")
_, run = call("POST", "/v1/companies/fuzz/runs", {"date": "2025-10-20"},
              headers={"Idempotency-Key": "fuzz-setup"})
for _ in range(600):
    _, r = call("GET", f"/v1/companies/fuzz/runs/{run['id']}")
    if r["state"] != "running":
        break
    time.sleep(0.1)
assert r["state"] == "completed", r
print(f"company fuzz: plugins {sorted(digests)}, a chain, 2 customers, run {run['id']} completed")
