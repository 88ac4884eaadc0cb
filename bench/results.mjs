#!/usr/bin/env node
// Merges the records bench/run.sh appended ({"path": "a.b.c", "value": ...} per line) into
// one JSON document on stdout: later records of the same path replace earlier ones.
import { readFileSync } from 'node:fs';

const out = {};
for (const line of readFileSync(process.argv[2], 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const { path, value } = JSON.parse(line);
  const keys = path.split('.');
  let node = out;
  for (const k of keys.slice(0, -1)) node = node[k] ??= {};
  node[keys.at(-1)] = value;
}
process.stdout.write(JSON.stringify(out, null, 2) + '\n');
