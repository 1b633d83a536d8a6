"""The boto3 client of the compatibility matrix (tests/compat.rs): one application process with
one boto3 session and one STS client, configured by nothing but its environment, calling
GetCallerIdentity in a loop.

Usage: client.py SECONDS STS_URL

Prints one JSON line first ({"client", "version"}), then one per call: {"ok": true, "arn",
"account_id"} or {"ok": false, "error"}. Exits 1 if any call failed.
"""
import json
import sys
import time

import boto3
import botocore

PAUSE = 0.2  # between calls: several calls per rotation, without flooding moto


def main():
    seconds, url = float(sys.argv[1]), sys.argv[2]
    print(json.dumps({"client": "boto3", "version": f"boto3 {boto3.__version__}, botocore {botocore.__version__}"}), flush=True)
    session = boto3.Session(region_name="us-east-1")
    sts = session.client("sts", endpoint_url=url)
    failed = False
    deadline = time.monotonic() + seconds
    while True:
        try:
            arn = sts.get_caller_identity()["Arn"]
            # The session's credentials object is the one the client signs with; its frozen copy
            # carries the account id the provider read (None where it read none).
            account_id = session.get_credentials().get_frozen_credentials().account_id
            print(json.dumps({"ok": True, "arn": arn, "account_id": account_id}), flush=True)
        except Exception as e:  # every failure is a result to report, not a crash
            failed = True
            print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}), flush=True)
        if time.monotonic() >= deadline:
            break
        time.sleep(PAUSE)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
