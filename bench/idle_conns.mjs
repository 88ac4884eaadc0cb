#!/usr/bin/env node
// Opens `connections` keep-alive client connections, sends one small chat completion on each
// (so each is a used HTTP/1.1 connection the server keeps for the next request), then leaves
// them idle and reads the summed RSS of --pids: before, and after `settle-s` seconds idle.
// Prints one JSON object. The caller raises `ulimit -n` (this process needs one fd each).
//
// Usage: node idle_conns.mjs --url http://127.0.0.1:8080/v1/chat/completions
//        [--connections 10000] [--batch 500] [--settle-s 1] --pids 123
import net from 'node:net';
import { chatBody, memKiB, parseFlags, pidList } from './lib.mjs';

const flags = parseFlags(process.argv.slice(2), {
  url: '',
  connections: 10000,
  batch: 500,
  'settle-s': 1,
  pids: '',
});
const url = new URL(flags.url);
const pids = pidList(flags.pids);
const body = chatBody(256);
const request = Buffer.from(
  `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\n` +
    `Authorization: Bearer bench-key\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
);
const rss = () => pids.reduce((s, p) => s + memKiB(p).rss, 0);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves true once the answer's head and Content-Length body are in (the connection idles).
function openOne() {
  return new Promise((resolve) => {
    const socket = net.connect({ host: url.hostname, port: Number(url.port) || 80 });
    let buf = Buffer.alloc(0);
    let settled = false;
    const settle = (ok) => {
      if (settled) return;
      settled = true;
      resolve(ok ? socket : null);
    };
    socket.on('connect', () => socket.write(request));
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const headEnd = buf.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const length = Number((buf.subarray(0, headEnd).toString('latin1').match(/content-length:\s*(\d+)/i) || [])[1] || 0);
      if (buf.length >= headEnd + 4 + length) settle(buf.subarray(9, 12).toString() === '200');
    });
    socket.on('error', () => settle(false));
    socket.on('close', () => settle(false));
  });
}

const before = rss();
const open = [];
let failed = 0;
const t0 = Date.now();
for (let i = 0; i < flags.connections; i += flags.batch) {
  const n = Math.min(flags.batch, flags.connections - i);
  const sockets = await Promise.all(Array.from({ length: n }, openOne));
  for (const s of sockets) (s ? open.push(s) : failed++);
}
const openSeconds = (Date.now() - t0) / 1000;
await sleep(flags['settle-s'] * 1000);
let closedMeanwhile = 0;
for (const s of open) if (s.destroyed || s.readyState !== 'open') closedMeanwhile++;
const after = rss();
const idle = open.length - closedMeanwhile;
process.stdout.write(
  JSON.stringify({
    connections: flags.connections,
    idle,
    failed,
    closed_by_server: closedMeanwhile,
    open_s: openSeconds,
    rss_before_kib: before,
    rss_after_kib: after,
    bytes_per_connection: idle > 0 ? Math.round(((after - before) * 1024) / idle) : null,
  }) + '\n',
);
for (const s of open) s.destroy();
process.exit(0);
