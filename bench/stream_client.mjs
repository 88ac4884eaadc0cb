#!/usr/bin/env node
// Opens `streams` concurrent streamed chat completions (each on its own connection, started
// evenly over `ramp-ms`) and measures, per stream, the time to first token (request written →
// first SSE event carrying content) and every gap between token events. The mock is told the
// token count and pace by the x-mock-tokens / x-mock-token-delay-ms headers. With --pids, the
// summed RSS of those processes is sampled during the run (peak) and their CPU time taken
// before and after. Prints one JSON object; times in ms.
//
// Raw sockets and a byte scan for the token marker, not node:http: at 1,000 streams × 100
// tokens/s the client must stay cheap next to what it measures.
//
// Usage: node stream_client.mjs --url http://127.0.0.1:8080/v1/chat/completions
//        [--streams 1000] [--tokens 200] [--delay-ms 10] [--ramp-ms 500] [--pids 123,456]
//        [--warmup-tokens 5] [--clk-tck 100] [--timeout-s 60]
//
// A warm-up round of the same streams with --warmup-tokens tokens goes first (0: none), so
// every target is measured with its upstream connections and heap already grown: without
// it the first target pays for connection setup the others do not. RSS is sampled from
// before the warm-up (idle) through both rounds; CPU covers the measured round only.
import net from 'node:net';
import { Histogram, ProcessSampler, chatBody, parseFlags, pidList } from './lib.mjs';

const flags = parseFlags(process.argv.slice(2), {
  url: '',
  streams: 1000,
  tokens: 200,
  'delay-ms': 10,
  'ramp-ms': 500,
  pids: '',
  'warmup-tokens': 5,
  'clk-tck': 100,
  'timeout-s': 60,
});
const url = new URL(flags.url);
const body = chatBody(256, true);
const requestFor = (tokens) => Buffer.from(
  `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\n` +
    `Authorization: Bearer bench-key\r\nx-mock-tokens: ${tokens}\r\n` +
    `x-mock-token-delay-ms: ${flags['delay-ms']}\r\nConnection: close\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
);
// Every token event of the mock carries "content":"tok<n> "; the first (role) event has "".
const MARKER = Buffer.from('"content":"tok');
const DONE = Buffer.from('data: [DONE]');

const nowNs = () => Number(process.hrtime.bigint());
const ttft = new Histogram();
const gaps = new Histogram();
const result = { completed: 0, failed: 0, short: 0, tokens: 0, statuses: {} };
const sampler = new ProcessSampler(pidList(flags.pids), 50, flags['clk-tck']);
let request = requestFor(flags.tokens);
let measuring = true;
let roundTokens = flags.tokens;
let onRoundEnd = null;
let finished = 0;
let t0 = nowNs();
let cpuAtStart = 0;

function count(buf, needle) {
  let n = 0;
  for (let i = buf.indexOf(needle); i >= 0; i = buf.indexOf(needle, i + needle.length)) n++;
  return n;
}

function openStream() {
  let startNs = 0;
  let lastTokenNs = 0;
  let tokens = 0;
  let status = 0;
  let done = false;
  let tail = Buffer.alloc(0); // the last bytes of the previous read: a marker may straddle reads
  let settled = false;
  const socket = net.connect({ host: url.hostname, port: Number(url.port) || 80 });
  socket.setNoDelay(true);
  socket.on('connect', () => {
    startNs = nowNs();
    socket.write(request);
  });
  socket.on('data', (d) => {
    const t = nowNs();
    if (status === 0) status = Number(d.subarray(9, 12).toString('latin1'));
    const scan = tail.length ? Buffer.concat([tail, d]) : d;
    const n = count(scan, MARKER);
    if (n > 0) {
      if (measuring) {
        if (tokens === 0) ttft.record(t - startNs);
        else gaps.record(t - lastTokenNs);
        // Tokens that arrived in the same read came with no gap between them.
        for (let i = 1; i < n; i++) gaps.record(0);
      }
      tokens += n;
      lastTokenNs = t;
    }
    if (!done && scan.indexOf(DONE) >= 0) done = true;
    // Keep less than one marker so a marker is never counted twice.
    tail = Buffer.from(scan.subarray(Math.max(0, scan.length - (MARKER.length - 1))));
    if (done) socket.end();
  });
  const settle = () => {
    if (settled) return;
    settled = true;
    if (!measuring) {
      if (++finished === flags.streams) onRoundEnd();
      return;
    }
    result.statuses[status] = (result.statuses[status] || 0) + 1;
    result.tokens += tokens;
    if (status === 200 && done && tokens === roundTokens) result.completed++;
    else if (status === 200 && done) result.short++;
    else result.failed++;
    if (++finished === flags.streams) finish();
  };
  socket.on('error', settle);
  socket.on('close', settle);
}

function finish() {
  const wall = (nowNs() - t0) / 1e9;
  const proc = sampler.stop();
  proc.cpu_s = (sampler.cpu() - cpuAtStart) / flags['clk-tck'];
  const out = {
    streams: flags.streams,
    tokens_per_stream: flags.tokens,
    token_delay_ms: flags['delay-ms'],
    ramp_ms: flags['ramp-ms'],
    warmup_tokens: flags['warmup-tokens'],
    wall_s: Math.round(wall * 1000) / 1000,
    ...result,
    ttft_ms: ttft.summary(1e6),
    gap_ms: gaps.summary(1e6),
    process: proc,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

const spacing = flags.streams > 1 ? flags['ramp-ms'] / (flags.streams - 1) : 0;
function startRound() {
  finished = 0;
  for (let i = 0; i < flags.streams; i++) setTimeout(openStream, i * spacing);
}
function measuredRound() {
  measuring = true;
  roundTokens = flags.tokens;
  request = requestFor(flags.tokens);
  t0 = nowNs();
  cpuAtStart = sampler.cpu();
  setTimeout(() => {
    process.stderr.write(`stream_client: timed out with ${flags.streams - finished} streams open\n`);
    result.failed += flags.streams - finished;
    finish();
  }, flags['timeout-s'] * 1000).unref();
  startRound();
}
if (flags['warmup-tokens'] > 0) {
  measuring = false;
  roundTokens = flags['warmup-tokens'];
  request = requestFor(roundTokens);
  onRoundEnd = () => setTimeout(measuredRound, 200);
  startRound();
} else {
  measuredRound();
}
