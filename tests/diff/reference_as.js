// reference_as.js — a reference Matrix application service on the npm
// package matrix-appservice (pure JavaScript: express, body-parser), for
// the differential test tests/diff/test_matrix_appservice.py.
//
//   node reference_as.js HS_TOKEN BODY_BYTES_MAX
//
// Listens on a free loopback port and prints "listening PORT" once it
// does. It answers as the library does (its AppService): the hs_token
// check, the body limit (set to tallyd's matrix_body_bytes_max, so the two
// refuse the same sizes), the txnId dedupe. It prints "event EVENT_ID" for
// every event the library hands to the application (its "event" signal),
// so the test can see what it processed, not only what it answered.
"use strict";
const { AppService } = require("matrix-appservice");

const [hsToken, bodyMax] = process.argv.slice(2);
if (!hsToken || !bodyMax) {
  console.error("usage: node reference_as.js HS_TOKEN BODY_BYTES_MAX");
  process.exit(2);
}
const as = new AppService({ homeserverToken: hsToken, httpMaxSizeBytes: Number(bodyMax) });
as.on("event", (ev) => console.log("event " + (ev && ev.event_id)));
as.listen(0, "127.0.0.1").then(() => {
  console.log("listening " + as.server.address().port);
});
process.on("SIGTERM", () => as.close().then(() => process.exit(0)));
