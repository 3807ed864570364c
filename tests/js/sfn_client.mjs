// Drives stepd with the real AWS SDK for JavaScript v3 (@aws-sdk/client-sfn), unchanged but
// for the endpoint: `node sfn_client.mjs ENDPOINT_URL < operations.json`.
//
// stdin is a JSON list of calls, run one after another: [{"op": "StartExecution",
// "input": {...}}, ...], `op` being the name of a command of the client without its
// `Command` suffix. stdout is one JSON list with one entry per call, in order:
//   {"ok": true, "output": ...}  the command's output as the SDK parsed it
//   {"ok": false, "error": {"name", "message", "fault", "httpStatusCode", "modeled", ...}}
// A Date in an output is written as {"$date": ISO string}, so the caller can tell that the
// SDK built a Date rather than leaving a number or a string. `modeled` says whether the error
// is an instance of the client's exception class of that name (ExecutionAlreadyExists, ...),
// as code doing `err instanceof ExecutionAlreadyExists` would check.
// The exit status is 0 whenever every call was made, whatever each answered; 2 for bad usage.

import * as sfn from "@aws-sdk/client-sfn";
import encoding from "./encode.cjs";

const { encode } = encoding;

function describeError(error) {
  const modeledClass = sfn[error?.name];
  return {
    name: error?.name,
    message: error?.message,
    fault: error?.$fault,
    httpStatusCode: error?.$metadata?.httpStatusCode,
    requestId: error?.$metadata?.requestId,
    modeled: typeof modeledClass === "function" && error instanceof modeledClass,
    serviceException: error instanceof sfn.SFNServiceException,
    stack: error instanceof sfn.SFNServiceException ? undefined : error?.stack,
  };
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

async function main() {
  const endpoint = process.argv[2];
  if (!endpoint) {
    process.stderr.write("usage: node sfn_client.mjs ENDPOINT_URL < operations.json\n");
    return 2;
  }
  const calls = JSON.parse(await readStdin());
  const client = new sfn.SFNClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "x", secretAccessKey: "y" },
    maxAttempts: 1, // an answer the SDK retries would hide what stepd said first
  });
  const results = [];
  try {
    for (const call of calls) {
      const Command = sfn[`${call.op}Command`];
      if (typeof Command !== "function") {
        results.push({ ok: false, error: { name: "NoSuchCommand", message: call.op } });
        continue;
      }
      try {
        const output = await client.send(new Command(call.input ?? {}));
        results.push({ ok: true, output: encode(output) });
      } catch (error) {
        results.push({ ok: false, error: encode(describeError(error)) });
      }
    }
  } finally {
    client.destroy();
  }
  process.stdout.write(`${JSON.stringify(results)}\n`);
  return 0;
}

process.exitCode = await main();
