"""SCIM conformance: scim2-tester's checks against a running CFactory's /scim/v2.

Usage: scim_check.py BASE_URL KEY

Runs discovery, Users and Groups CRUD and PATCH checks, prints each check's result, and
exits non-zero when any check fails (an error or a critical finding). Checks the
tester skips, because the ServiceProviderConfig says a feature is not offered, do not
count as failures.
"""

import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

TAGS = {
    "discovery",
    "crud:create",
    "crud:read",
    "crud:read:attributes",
    "crud:update",
    "crud:delete",
    "patch:add",
    "patch:remove",
    "patch:replace",
}
FAILED = {Status.ERROR, Status.CRITICAL}


def main() -> int:
    base, key = sys.argv[1], sys.argv[2]
    http = Client(
        base_url=f"{base}/scim/v2",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    client = SyncSCIMClient(http)
    results = check_server(client, include_tags=TAGS, resource_types=["User", "Group"])
    failures = 0
    for result in results:
        mark = "FAIL" if result.status in FAILED else result.status.name
        if result.status in FAILED:
            failures += 1
        line = f"{mark:<10} {result.title}"
        if result.status in FAILED and result.reason:
            line += f": {result.reason}"
        print(line)
    print(f"{len(results)} checks, {failures} failed")
    return 1 if failures or not results else 0


if __name__ == "__main__":
    sys.exit(main())
