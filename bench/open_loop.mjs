#!/usr/bin/env node
// Open-loop load at a fixed rate (what wrk2 does; Debian 12 has no wrk2): requests are due at
// start + i/rate whatever the target's speed, and sent over `connections` keep-alive
// connections (one request in flight on each). A request's latency runs from the moment the
// generator first could send it (its due time, or the 1 ms timer tick that found it due) to
// the last byte of the answer, so time spent queued for a free connection while the target
// is slow counts (no coordinated omission), but the generator's own timer slack does not.
// Prints one JSON object: achieved rate, errors, latency percentiles in µs.
//
// Usage: node open_loop.mjs --url http://127.0.0.1:8080/v1/chat/completions --rate 5000
//        [--duration 10] [--warmup 1] [--connections 64] [--body-bytes 1024]
//        [--header "x-mock-tokens: 120"]...
import net from 'node:net';
import { Histogram, chatBody, parseFlags } from './lib.mjs';

const flags = parseFlags(process.argv.slice(2), {
  url: '',
  rate: 1000,
  duration: 10,
  warmup: 1,
  connections: 64,
  'body-bytes': 1024,
  header: [],
});
const url = new URL(flags.url);
const body = Buffer.from(chatBody(flags['body-bytes']));
const extra = flags.header.map((h) => `${h}\r\n`).join('');
const request = Buffer.concat([
  Buffer.from(
    `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\n` +
      `Authorization: Bearer bench-key\r\n${extra}Content-Length: ${body.length}\r\n\r\n`,
  ),
  body,
]);

const nowNs = () => Number(process.hrtime.bigint());
const histogram = new Histogram();
const stats = { sent: 0, completed: 0, recorded: 0, non2xx: 0, errors: 0, maxQueue: 0 };
const queue = []; // start times (ns) of requests due but not yet sent
let queueHead = 0;
const idle = [];
const start = nowNs();
const warmupEnd = start + flags.warmup * 1e9;
const end = warmupEnd + flags.duration * 1e9;
const intervalNs = 1e9 / flags.rate;
let due = 0; // requests due so far
let stopping = false;

// Minimal HTTP/1.1 response reader: status, Content-Length or chunked body; one at a time.
class Connection {
  constructor() {
    this.buf = Buffer.alloc(0);
    this.startNs = 0;
    this.busy = false;
    this.socket = net.connect({ host: url.hostname, port: Number(url.port) || 80 });
    this.socket.setNoDelay(true);
    this.socket.on('connect', () => this.release());
    this.socket.on('data', (d) => this.onData(d));
    this.socket.on('error', () => {});
    this.socket.on('close', () => this.onClose());
  }

  send(startNs) {
    this.busy = true;
    this.startNs = startNs;
    this.resetParser();
    stats.sent++;
    this.socket.write(request);
  }

  resetParser() {
    this.status = 0;
    this.bodyLeft = -1;
    this.chunked = false;
  }

  release() {
    this.busy = false;
    if (!stopping) idle.push(this);
    pump();
  }

  onData(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    if (this.busy && this.parse()) {
      const t = nowNs();
      stats.completed++;
      if (this.status < 200 || this.status > 299) stats.non2xx++;
      if (this.startNs >= warmupEnd && t <= end) {
        histogram.record(t - this.startNs);
        stats.recorded++;
      }
      // The server ends this connection after the answer (nginx does every
      // keepalive_requests): a new one takes its place rather than a request sent into it.
      if (this.closing) {
        this.busy = false;
        this.socket.destroy();
      } else {
        this.release();
      }
    }
  }

  // True once the whole answer is in; consumes it from the buffer.
  parse() {
    if (this.status === 0) {
      const headEnd = this.buf.indexOf('\r\n\r\n');
      if (headEnd < 0) return false;
      const head = this.buf.subarray(0, headEnd).toString('latin1');
      this.status = Number(head.slice(9, 12));
      const length = head.match(/\r\ncontent-length:\s*(\d+)/i);
      this.chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
      this.bodyLeft = length ? Number(length[1]) : 0;
      this.closing = /\r\nconnection:\s*close/i.test(head);
      this.buf = this.buf.subarray(headEnd + 4);
    }
    if (!this.chunked) {
      if (this.buf.length < this.bodyLeft) return false;
      this.buf = this.buf.subarray(this.bodyLeft);
      return true;
    }
    for (;;) {
      const lineEnd = this.buf.indexOf('\r\n');
      if (lineEnd < 0) return false;
      const size = parseInt(this.buf.subarray(0, lineEnd).toString('latin1'), 16);
      if (size === 0) {
        // No trailers expected: the last chunk is "0\r\n\r\n".
        if (this.buf.length < lineEnd + 4) return false;
        this.buf = this.buf.subarray(lineEnd + 4);
        return true;
      }
      if (this.buf.length < lineEnd + 2 + size + 2) return false;
      this.buf = this.buf.subarray(lineEnd + 2 + size + 2);
    }
  }

  onClose() {
    if (stopping || this.closed) return;
    this.closed = true;
    // The request in flight (if any) failed; its slot comes back on a new connection.
    if (this.busy) stats.errors++;
    const i = idle.indexOf(this);
    if (i >= 0) idle.splice(i, 1);
    setTimeout(() => new Connection(), 10);
  }
}

function pump() {
  while (queueHead < queue.length && idle.length > 0) {
    idle.pop().send(queue[queueHead++]);
  }
  if (queueHead > 4096 && queueHead * 2 > queue.length) {
    queue.splice(0, queueHead);
    queueHead = 0;
  }
}

function tick() {
  const t = nowNs();
  if (t >= end) return finish();
  const nowDue = Math.floor((t - start) / intervalNs);
  // Every request that fell due since the last tick starts its clock now: its due time lies
  // at most one timer tick back, and that slack is the generator's, not the target's.
  for (; due < nowDue; due++) queue.push(t);
  stats.maxQueue = Math.max(stats.maxQueue, queue.length - queueHead);
  pump();
  setTimeout(tick, 1);
}

function finish() {
  stopping = true;
  const backlog = queue.length - queueHead;
  const out = {
    target_rate: flags.rate,
    achieved_rate: Math.round(stats.recorded / flags.duration),
    connections: flags.connections,
    duration_s: flags.duration,
    warmup_s: flags.warmup,
    body_bytes: body.length,
    sent: stats.sent,
    completed: stats.completed,
    non2xx: stats.non2xx,
    errors: stats.errors,
    max_queue: stats.maxQueue,
    backlog_at_end: backlog,
    latency_us: histogram.summary(1e3),
  };
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

for (let i = 0; i < flags.connections; i++) new Connection();
setTimeout(tick, 1);
