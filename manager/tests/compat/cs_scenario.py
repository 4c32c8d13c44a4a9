"""Drives a live vpc-manager with the real `cs` client library.

Usage: cs_scenario.py ENDPOINT KEY SECRET EXPECTED_DOMAINS ACCOUNT_ID
Prints "cs scenario passed" on success; any failed check raises.
"""
import sys

from cs import CloudStack, CloudStackApiException

endpoint, key, secret, expected_domains, account_id = sys.argv[1:6]
# POST and GET both sign the same way; use POST to cover form bodies too.
api = CloudStack(endpoint=endpoint, key=key, secret=secret, method="post", poll_interval=0.2, fetch_result=True)

# Signed requests, with signatureVersion=3 and expires (cs sends both).
zones = api.listZones()
assert zones == {}, zones

# Paging: cs walks pages of 500 until it has `count` items.
domains = api.listDomains(fetch_list=True, listall=True)
assert len(domains) == int(expected_domains), (len(domains), expected_domains)
assert len({d["id"] for d in domains}) == len(domains), "pages overlap"

# An async job, polled by cs through queryAsyncJobResult to its result.
# lock=true locks the account (CloudStack's lockAccount): state "locked".
result = api.disableAccount(id=account_id, lock=True)
assert result["account"]["state"] == "locked", result

# Errors surface as CloudStack's exception with CloudStack's fields.
try:
    api.deleteAccount(id="6b1e9e5f-1f0e-4d3c-9a55-2f2f7b1a0c11")
except CloudStackApiException as error:
    body = error.error
    assert body["errorcode"] == 431, body
    assert "entity does not exist" in body["errortext"], body
else:
    raise AssertionError("deleting an unknown account did not fail")

print("cs scenario passed")
