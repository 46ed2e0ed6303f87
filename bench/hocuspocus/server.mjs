// One Hocuspocus instance with the Redis extension: the reference server of bench/fanout.py.
//
//   node server.mjs --port 1234 --redis-host 127.0.0.1 --redis-port 6379 --name h1
//
// Two of these on one Redis is the multi-instance setup Hocuspocus documents. No auth hook,
// so any token is accepted; no persistence extension, so documents live in memory only
// (the Redis extension still takes its store lock per debounced store, as in production).
// Prints "hocuspocus listening on http://127.0.0.1:PORT" once it accepts connections.

import { Redis } from "@hocuspocus/extension-redis";
import { Server } from "@hocuspocus/server";

function arg(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  if (at === -1 || at + 1 >= process.argv.length) {
    if (fallback === undefined) {
      console.error(`missing --${name}`);
      process.exit(2);
    }
    return fallback;
  }
  return process.argv[at + 1];
}

const port = Number(arg("port"));
const name = arg("name", `h-${process.pid}`);

const server = new Server({
  name,
  port,
  address: "127.0.0.1",
  quiet: true,
  stopOnSignals: true,
  extensions: [
    new Redis({
      host: arg("redis-host", "127.0.0.1"),
      port: Number(arg("redis-port", "6379")),
      identifier: name,
    }),
  ],
});

await server.listen();
console.log(`hocuspocus listening on http://127.0.0.1:${server.address.port}`);
