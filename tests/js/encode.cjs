// What the test clients print for an SDK's output: JSON, with each Date written as
// {"$date": ISO string}, so the caller can tell that the SDK built a Date rather than leaving a
// number or a string. Shared by sfn_client.mjs (v3) and sdk_v2_client.cjs (v2).

"use strict";

function encode(value) {
  if (value instanceof Date) {
    return { $date: Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString() };
  }
  if (Array.isArray(value)) {
    return value.map(encode);
  }
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, item]) => item !== undefined)
        .map(([key, item]) => [key, encode(item)]),
    );
  }
  return value;
}

module.exports = { encode };
