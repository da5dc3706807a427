"""schemathesis hooks for scripts/schemathesis.sh: every operation runs with a key minted
through the API itself (POST /api/keys, no auth), so the stateful phase exercises "mint a key,
then use it". The calls that disable or rotate the calling key get a throwaway key of their
own, so the shared one keeps working; the admin paths get the admin token."""

import os

import requests
import schemathesis

BASE = os.environ["PURA_SCHEMATHESIS_URL"]
ADMIN = os.environ["PURA_SCHEMATHESIS_ADMIN"]
# Operations that end the calling key's use (disable, new secret).
SPENDS_KEY = {("DELETE", "/api/keys/me"), ("POST", "/api/keys/me/rotate")}


def mint():
    resp = requests.post(f"{BASE}/api/keys", json={"label": "schemathesis"}, timeout=10)
    resp.raise_for_status()
    return resp.json()["key"]


@schemathesis.auth()
class MintedKey:
    def get(self, case, ctx):
        return mint()

    def set(self, case, data, ctx):
        if case.path.startswith("/api/admin/"):
            key = ADMIN
        elif (case.method.upper(), case.path) in SPENDS_KEY:
            key = mint()
        else:
            key = data
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {key}"
        case.headers.setdefault("x-api-key", key)
