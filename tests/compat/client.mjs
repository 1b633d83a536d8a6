// The JavaScript client of the compatibility matrix (tests/compat.rs): one application process
// with one STSClient on the SDK's default credential chain, configured by nothing but its
// environment, calling GetCallerIdentity in a loop.
//
// Usage: node client.mjs SECONDS STS_URL
//
// Prints one JSON line first ({client, version}), then one per call: {ok: true, arn, account_id}
// or {ok: false, error}. Exits 1 if any call failed.
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";

const PAUSE_MS = 200; // between calls: several calls per rotation, without flooding moto

const [seconds, url] = process.argv.slice(2);
const pkg = (name) =>
  JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url))).version;
console.log(
  JSON.stringify({
    client: "aws-sdk-js-v3",
    version: `@aws-sdk/client-sts ${pkg("@aws-sdk/client-sts")}, @aws-sdk/credential-provider-node ${pkg("@aws-sdk/credential-provider-node")}`,
  }),
);

const sts = new STSClient({ region: "us-east-1", endpoint: url });
let failed = false;
const deadline = Date.now() + Number(seconds) * 1000;
for (;;) {
  try {
    const { Arn } = await sts.send(new GetCallerIdentityCommand({}));
    // The client's own memoized provider: what it signs with, and the account id it read.
    const credentials = await sts.config.credentials();
    console.log(JSON.stringify({ ok: true, arn: Arn, account_id: credentials.accountId ?? null }));
  } catch (e) {
    failed = true;
    console.log(JSON.stringify({ ok: false, error: `${e.name}: ${e.message}` }));
  }
  if (Date.now() >= deadline) break;
  await sleep(PAUSE_MS);
}
process.exit(failed ? 1 : 0);
