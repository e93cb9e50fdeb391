#!/usr/bin/env python3
"""A fake Acme People API on loopback, to try the byo-api walkthrough without an Acme account.

    python3 examples/byo-api/fake_acme.py            # http://127.0.0.1:8765/api/v1
    ACME_TOKEN=demo-token roster fetch acme ...      # the token it accepts

It serves GET /api/v1/employees as providers/acme.yaml expects: bearer token, `page` (from 1)
and `per_page` (at most 100), `status=all` (default: current staff only), `meta.total` and a
`Link: <...>; rel="next"` header. 240 seeded people: managers, freelancers, pre-hires, people
on leave, leavers, a QA test account, one record without an email. Standard library only.
"""
import json
import os
import random
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PORT = int(os.environ.get("FAKE_ACME_PORT", "8765"))
TOKEN = os.environ.get("FAKE_ACME_TOKEN", "demo-token")

FIRST = ["Nina", "Omar", "Lea", "Lars", "Ada", "Mira", "Jonas", "Priya", "Tomás", "Elif", "Sam", "Yuki"]
LAST = ["Roth", "Haddad", "Wong", "Berg", "Okafor", "Weber", "Raman", "Ortega", "Kaya", "Park", "Sato", "Novak"]
DEPTS = [("Engineering", ["Platform", "Payments", "Mobile"]), ("Sales", ["EMEA", "DACH"]),
         ("People", [None]), ("Finance", [None]), ("Security", [None])]


def people():
    rnd = random.Random(42)
    out = []
    for i in range(240):
        pid = 1000 + i
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        dept, teams = DEPTS[i % len(DEPTS)]
        team = rnd.choice(teams)
        kind = "freelance" if i % 9 == 4 else rnd.choice(["full_time", "full_time", "part_time", "working_student"])
        status = "active"
        start, end = f"20{rnd.randint(15, 24)}-{rnd.randint(1, 12):02d}-01", None
        if i == 0:
            pass  # the CEO, at the top of the org chart
        elif i % 17 == 0:
            status, start = "hired", f"2031-{rnd.randint(1, 12):02d}-01"
        elif i % 23 == 0:
            status = rnd.choice(["on_leave", "parental_leave"])
        elif i % 11 == 0:
            status, end = "left", "2025-06-30"
        out.append({
            "id": pid,
            "first_name": first,
            "last_name": last,
            "nickname": None,
            "email": None if i == 200 else f"{first}.{last}.{pid}@Acme.example".replace("á", "a"),
            "title": f"{dept} Specialist",
            "department": {"id": i % len(DEPTS), "name": dept,
                           "team": {"id": 100 + i % 7, "name": team} if team else None},
            "division": "Acme Robotics" if i % 2 else "Acme Cloud",
            "manager_id": None if i == 0 else (1000 if i < 10 else 1000 + rnd.randint(1, 9)),
            "location": {"name": rnd.choice(["Berlin HQ", "Munich", "Remote"]), "country": "DE"},
            "employment": {"type": kind, "entity": "Acme GmbH"},
            "status": status,
            "start_date": start,
            "end_date": end,
            "probation_until": None,
            "birthday": f"{rnd.randint(1, 28):02d}.{rnd.randint(1, 12):02d}.{rnd.randint(1965, 2002)}",
            "custom": {"cost_center": f"cc-{100 + i % 12}"},
            "is_test": False,
        })
    out.append({"id": 9001, "first_name": "Test", "last_name": "User", "email": "qa+1@acme.example",
                "employment": {"type": "full_time", "entity": "Acme GmbH"}, "status": "active",
                "start_date": "2024-01-01", "is_test": True})
    return out


PEOPLE = people()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.send(401, {"error": "invalid_token", "message": "unknown or revoked API token"})
        if url.path != "/api/v1/employees":
            return self.send(404, {"error": "not_found"})
        q = parse_qs(url.query)
        page = int(q.get("page", ["1"])[0])
        per_page = min(int(q.get("per_page", ["25"])[0]), 100)
        rows = PEOPLE if q.get("status", ["current"])[0] == "all" else [p for p in PEOPLE if p["status"] != "left"]
        chunk = rows[(page - 1) * per_page: page * per_page]
        headers = {}
        if page * per_page < len(rows):
            nxt = f"http://127.0.0.1:{PORT}/api/v1/employees?status=all&page={page + 1}&per_page={per_page}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        self.send(200, {"employees": chunk, "meta": {"page": page, "per_page": per_page, "total": len(rows)}}, headers)

    def send(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("fake-acme: " + fmt % args + "\n")


if __name__ == "__main__":
    print(f"fake Acme People API on http://127.0.0.1:{PORT}/api/v1 (token: {TOKEN})", flush=True)
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
