// The fault proxy itself: bytes pass in order, cut() refuses, setDelayMs() holds chunks for at
// least the delay without reordering them, resetConnections() drops live connections but lets
// new ones through.

import assert from "node:assert/strict";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { after, before, describe, it } from "node:test";
import { TcpProxy } from "./tcp_proxy.ts";

let echo: Server;
let proxy: TcpProxy;

function connect(address: string): Promise<Socket> {
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))];
  return new Promise((resolve, reject) => {
    const s = createConnection({ host, port }, () => resolve(s));
    s.once("error", reject);
  });
}

/** Sends `text` and resolves with what came back once `expectBytes` bytes arrived. */
function roundTrip(s: Socket, text: string, expectBytes = text.length): Promise<{ text: string; ms: number }> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    let got = "";
    const onData = (b: Buffer): void => {
      got += b.toString();
      if (got.length >= expectBytes) {
        s.off("data", onData);
        resolve({ text: got, ms: performance.now() - start });
      }
    };
    s.on("data", onData);
    s.once("close", () => reject(new Error(`closed after ${JSON.stringify(got)}`)));
    s.write(text);
  });
}

before(async () => {
  echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", () => r()));
  const a = echo.address();
  proxy = await TcpProxy.start(`127.0.0.1:${typeof a === "object" && a ? a.port : 0}`);
});

after(async () => {
  await proxy.close();
  await new Promise<void>((r) => echo.close(() => r()));
});

describe("TcpProxy", () => {
  it("forwards, then delays both ways in order", async () => {
    const s = await connect(proxy.address);
    try {
      assert.equal((await roundTrip(s, "hello")).text, "hello");
      proxy.setDelayMs(80);
      const chunks = ["a", "b", "c", "d", "e"];
      const r = await roundTrip(s, chunks.join(""));
      assert.equal(r.text, "abcde");
      assert.ok(r.ms >= 150, `two delayed hops should take >= 160 ms, took ${r.ms.toFixed(0)}`);
      // Lowering the delay must not let a new chunk overtake held ones.
      s.write("x");
      proxy.setDelayMs(0);
      const r2 = await roundTrip(s, "y", 2);
      assert.equal(r2.text, "xy");
    } finally {
      proxy.setDelayMs(0);
      s.destroy();
    }
  });

  it("resetConnections drops live connections and accepts new ones; cut refuses", async () => {
    const s = await connect(proxy.address);
    const closed = new Promise<void>((r) => s.once("close", () => r()));
    proxy.resetConnections();
    await closed;
    const s2 = await connect(proxy.address);
    assert.equal((await roundTrip(s2, "again")).text, "again");
    s2.destroy();
    proxy.cut();
    const s3 = await connect(proxy.address).catch(() => null);
    if (s3) {
      await new Promise<void>((r) => s3.once("close", () => r()));
      s3.destroy();
    }
    proxy.heal();
    const s4 = await connect(proxy.address);
    assert.equal((await roundTrip(s4, "healed")).text, "healed");
    s4.destroy();
  });
});
