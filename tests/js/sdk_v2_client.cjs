// Drives stepd with the AWS SDK for JavaScript v2 (`aws-sdk`), written the way the classroom
// blog post calls it: `new AWS.StepFunctions()` and a callback, with only the endpoint added.
// `node sdk_v2_client.cjs ENDPOINT_URL < operations.json`
//
// stdin is a JSON list of calls, [{"op": "StartExecution", "input": {...}}, ...], `op` being
// the API operation (the client's method with its first letter in upper case). stdout is one
// JSON list, one entry per call: {"ok": true, "output": ...} with Dates written as
// {"$date": ISO string}, or {"ok": false, "error": {"code", "message", "statusCode",
// "requestId", "retryable"}}. The exit status is 0 whenever every call was made.

"use strict";

process.env.AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE = "1";
const AWS = require("aws-sdk");
const { encode } = require("./encode.cjs");

function call(stepFunction, op, params) {
  const method = op.charAt(0).toLowerCase() + op.slice(1);
  return new Promise((resolve) => {
    if (typeof stepFunction[method] !== "function") {
      resolve({ ok: false, error: { code: "NoSuchMethod", message: method } });
      return;
    }
    stepFunction[method](params, (err, data) => {
      if (err) {
        resolve({
          ok: false,
          error: {
            code: err.code,
            message: err.message,
            statusCode: err.statusCode,
            requestId: err.requestId,
            retryable: err.retryable,
          },
        });
      } else {
        resolve({ ok: true, output: encode(data) });
      }
    });
  });
}

async function main() {
  const endpoint = process.argv[2];
  if (!endpoint) {
    process.stderr.write("usage: node sdk_v2_client.cjs ENDPOINT_URL < operations.json\n");
    return 2;
  }
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  const calls = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const stepFunction = new AWS.StepFunctions({
    endpoint,
    region: "us-east-1",
    credentials: new AWS.Credentials("x", "y"),
    maxRetries: 0,
  });
  const results = [];
  for (const { op, input } of calls) {
    results.push(await call(stepFunction, op, input ?? {}));
  }
  process.stdout.write(JSON.stringify(results));
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`${error?.stack ?? error}\n`);
    process.exitCode = 1;
  },
);
