// Shared pieces of the Node benchmark clients: a log-linear latency histogram, the chat
// request bodies (byte-identical to bench/chat.lua's), command-line flags and /proc readers.
// Node built-ins only, so `make bench` needs no npm install.
import { readFileSync } from 'node:fs';

// Log-linear histogram of non-negative integers (nanoseconds here): values below 2·SUB are
// exact, above that every power of two is split into SUB buckets, so a reported percentile
// is within 1/SUB (0.8 %) of the true one. Fixed memory whatever the sample count, which
// keeps an open-loop run of millions of requests cheap.
const SUB_BITS = 7;
const SUB = 1 << SUB_BITS;
const MAX_EXP = 40; // 2^47 ns ≈ 39 hours: anything longer is clamped

export class Histogram {
  constructor() {
    this.counts = new Float64Array(2 * SUB + MAX_EXP * SUB);
    this.count = 0;
    this.sum = 0;
    this.min = Infinity;
    this.max = 0;
  }

  static index(v) {
    if (v < 2 * SUB) return v;
    const e = Math.min(Math.floor(Math.log2(v)) - SUB_BITS, MAX_EXP);
    const mantissa = Math.min(Math.floor(v / 2 ** e), 2 * SUB - 1); // in [SUB, 2·SUB)
    return 2 * SUB + (e - 1) * SUB + (mantissa - SUB);
  }

  static value(i) {
    if (i < 2 * SUB) return i;
    const e = Math.floor((i - 2 * SUB) / SUB) + 1;
    const mantissa = ((i - 2 * SUB) % SUB) + SUB;
    return mantissa * 2 ** e + 2 ** (e - 1); // the bucket's midpoint
  }

  record(v) {
    v = Math.max(0, Math.round(v));
    this.counts[Histogram.index(v)] += 1;
    this.count += 1;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  merge(other) {
    for (let i = 0; i < this.counts.length; i++) this.counts[i] += other.counts[i];
    this.count += other.count;
    this.sum += other.sum;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
  }

  percentile(p) {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(Math.max(Histogram.value(i), this.min), this.max);
    }
    return this.max;
  }

  // Summary in `unit` (divisor from ns: 1e3 for µs, 1e6 for ms), three decimals.
  summary(divisor) {
    const r = (v) => (Number.isFinite(v) ? Math.round((v / divisor) * 1000) / 1000 : null);
    return {
      count: this.count,
      min: r(this.count ? this.min : NaN),
      mean: r(this.count ? this.sum / this.count : NaN),
      p50: r(this.percentile(50)),
      p90: r(this.percentile(90)),
      p99: r(this.percentile(99)),
      p999: r(this.percentile(99.9)),
      max: r(this.count ? this.max : NaN),
    };
  }
}

// A chat completion body of exactly `bytes` bytes: alternating user/assistant turns of ~2 KB
// and a last user turn padded to the size. Same construction as bench/chat.lua, so wrk and the
// Node clients send the same bytes.
export function chatBody(bytes, stream = false) {
  const head = `{"model":"mock-model",${stream ? '"stream":true,' : ''}"messages":[`;
  const tail = ']}';
  const text = 'The quick brown fox jumps over the lazy dog. '.repeat(44);
  const messages = [];
  let size = head.length + tail.length;
  for (let i = 0; ; i++) {
    const role = i % 2 === 0 ? 'user' : 'assistant';
    const m = `{"role":"${role}","content":"${text}"}`;
    if (size + m.length + 1 + 200 > bytes) break;
    messages.push(m);
    size += m.length + 1;
  }
  const prefix = '{"role":"user","content":"';
  const suffix = '"}';
  const fill = Math.max(0, bytes - size - prefix.length - suffix.length);
  const filler = 'Hello! How are you today? '.repeat(Math.ceil(fill / 26) + 1).slice(0, fill);
  messages.push(prefix + filler + suffix);
  return head + messages.join(',') + tail;
}

// --name value flags into an object; repeated flags become arrays.
export function parseFlags(argv, defaults) {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const key = a.slice(2);
    const value = argv[i + 1];
    i++;
    if (Array.isArray(out[key])) out[key] = [...out[key], value];
    else out[key] = typeof defaults[key] === 'number' ? Number(value) : value;
  }
  return out;
}

// Resident set (VmRSS) and its high-water mark (VmHWM) of a process, in KiB; 0 when gone.
export function memKiB(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const get = (name) => Number((status.match(new RegExp(`^${name}:\\s+(\\d+)`, 'm')) || [])[1] || 0);
    return { rss: get('VmRSS'), hwm: get('VmHWM') };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

// User + system CPU time of a process, in clock ticks (utime and stime of /proc/<pid>/stat).
export function cpuTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // fields 14 and 15 of stat(5)
  } catch {
    return 0;
  }
}

// Samples the summed RSS of `pids` every `everyMs` until stopped; CPU before/after.
export class ProcessSampler {
  constructor(pids, everyMs = 50, ticksPerSecond = 100) {
    this.pids = pids;
    this.ticks = ticksPerSecond;
    this.rssBefore = this.rss();
    this.cpuBefore = this.cpu();
    this.peakRss = this.rssBefore;
    this.timer = pids.length ? setInterval(() => this.sample(), everyMs) : null;
  }

  rss() {
    return this.pids.reduce((s, p) => s + memKiB(p).rss, 0);
  }

  cpu() {
    return this.pids.reduce((s, p) => s + cpuTicks(p), 0);
  }

  sample() {
    this.peakRss = Math.max(this.peakRss, this.rss());
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.sample();
    return {
      pids: this.pids,
      rss_before_kib: this.rssBefore,
      rss_peak_kib: this.peakRss,
      rss_after_kib: this.rss(),
      cpu_s: (this.cpu() - this.cpuBefore) / this.ticks,
    };
  }
}

export function pidList(s) {
  return String(s || '')
    .split(',')
    .filter(Boolean)
    .map(Number);
}
