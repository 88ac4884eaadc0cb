// Parses and validates the Prometheus text exposition format 0.0.4 that /metrics serves, for
// the integration tests: parsePrometheus(text) returns every sample as { name, labels, value }
// and throws on anything Prometheus would reject or that shows a bug in the renderer, naming
// the line. Stricter than Prometheus where sluice's output has no reason to be loose.
//   const samples = parsePrometheus(await (await fetch(`${gw.url}/metrics`)).text());
//   assert.equal(sampleValue(samples, 'sluice_requests_total', { route: 'chat' }), 1);

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
// Go's strconv.ParseFloat in decimal (what Prometheus uses), without hex floats or underscores.
const NUMBER = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?)$/;
const TIMESTAMP = /^-?\d+$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const BLANK = /[ \t]/;

class ParseError extends Error {}

function parseNumber(text) {
  if (/^nan$/i.test(text)) return NaN;
  if (!NUMBER.test(text)) throw new ParseError(`"${text}" is not a number`);
  if (/inf/i.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  return Number(text);
}

// A sample line: name, optional {labels}, value, optional timestamp.
function parseSample(line) {
  let i = 0;
  const skipBlanks = () => {
    while (i < line.length && BLANK.test(line[i])) i++;
  };
  const nameMatch = /^[^ \t{]*/.exec(line)[0];
  if (!METRIC_NAME.test(nameMatch)) throw new ParseError(`invalid metric name "${nameMatch}"`);
  i = nameMatch.length;
  const labels = {};
  const afterName = i;
  skipBlanks();
  if (line[i] !== '{') i = afterName;
  if (line[i] === '{') {
    i++;
    for (;;) {
      skipBlanks();
      if (line[i] === '}') break;
      const labelName = /^[^ \t=}]*/.exec(line.slice(i))[0];
      if (!LABEL_NAME.test(labelName)) throw new ParseError(`invalid label name "${labelName}"`);
      if (Object.hasOwn(labels, labelName)) {
        throw new ParseError(`label "${labelName}" appears twice`);
      }
      i += labelName.length;
      skipBlanks();
      if (line[i] !== '=') throw new ParseError(`expected "=" after label "${labelName}"`);
      i++;
      skipBlanks();
      if (line[i] !== '"') throw new ParseError(`expected '"' to open the value of "${labelName}"`);
      i++;
      let value = '';
      for (;;) {
        if (i >= line.length) throw new ParseError(`unterminated value of label "${labelName}"`);
        const c = line[i++];
        if (c === '"') break;
        if (c !== '\\') {
          value += c;
          continue;
        }
        const escaped = line[i++];
        if (escaped === '\\') value += '\\';
        else if (escaped === '"') value += '"';
        else if (escaped === 'n') value += '\n';
        else throw new ParseError(`invalid escape "\\${escaped ?? ''}" in label "${labelName}"`);
      }
      labels[labelName] = value;
      skipBlanks();
      if (line[i] === ',') {
        i++;
      } else if (line[i] !== '}') {
        throw new ParseError(`expected "," or "}" after the value of label "${labelName}"`);
      }
    }
    i++;  // past '}'
  }
  const rest = line.slice(i);
  if (rest !== '' && !BLANK.test(rest[0])) throw new ParseError('expected a blank before the value');
  const fields = rest.split(/[ \t]+/).filter((field) => field !== '');
  if (fields.length === 0) throw new ParseError('missing value');
  if (fields.length > 2) throw new ParseError(`unexpected "${fields.slice(2).join(' ')}"`);
  const value = parseNumber(fields[0]);
  if (fields.length === 2 && !TIMESTAMP.test(fields[1])) {
    throw new ParseError(`invalid timestamp "${fields[1]}"`);
  }
  return { name: nameMatch, labels, value };
}

function unescapeHelp(text) {
  return text.replace(/\\(.?)/g, (_, c) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    throw new ParseError(`invalid escape "\\${c}" in HELP`);
  });
}

// A sample's labels without `le`, as a key: one histogram series.
function seriesKey(labels, without) {
  return JSON.stringify(Object.entries(labels).filter(([k]) => k !== without).sort());
}

// Each histogram series: buckets in increasing `le` with non-decreasing counts, ending at
// +Inf, then _sum and _count, _count equal to the +Inf bucket.
function checkHistogram(name, samples) {
  const series = new Map();
  const get = (labels) => {
    const key = seriesKey(labels, 'le');
    if (!series.has(key)) series.set(key, { buckets: [], sum: undefined, count: undefined });
    return series.get(key);
  };
  for (const sample of samples) {
    if (sample.name === `${name}_bucket`) {
      if (!Object.hasOwn(sample.labels, 'le')) throw new Error(`${sample.name} without "le"`);
      get(sample.labels).buckets.push({ le: parseNumber(sample.labels.le), count: sample.value });
    } else if (sample.name === `${name}_sum`) {
      get(sample.labels).sum = sample.value;
    } else {
      get(sample.labels).count = sample.value;
    }
  }
  for (const [key, { buckets, sum, count }] of series) {
    const where = `histogram ${name}${key}`;
    if (buckets.length === 0) throw new Error(`${where}: no buckets`);
    for (let b = 1; b < buckets.length; b++) {
      if (!(buckets[b].le > buckets[b - 1].le)) throw new Error(`${where}: "le" not increasing`);
      if (buckets[b].count < buckets[b - 1].count) {
        throw new Error(`${where}: bucket counts are not cumulative`);
      }
    }
    if (buckets.at(-1).le !== Infinity) throw new Error(`${where}: no le="+Inf" bucket`);
    if (sum === undefined) throw new Error(`${where}: no _sum`);
    if (count !== buckets.at(-1).count) {
      throw new Error(`${where}: _count ${count} is not the +Inf bucket ${buckets.at(-1).count}`);
    }
  }
}

// `text`: a string, or the bytes of a body (then they must be valid UTF-8).
export function parsePrometheus(text) {
  if (typeof text !== 'string') {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(text);
    } catch {
      throw new Error('prometheus text: not valid UTF-8');
    }
  }
  if (text !== '' && !text.endsWith('\n')) {
    throw new Error('prometheus text: the last line does not end with "\\n"');
  }
  const types = new Map();  // family name -> type
  const helps = new Set();
  const seenFamilies = new Set();  // families whose samples have started
  const seenSeries = new Set();
  const samplesByFamily = new Map();
  let currentFamily;
  const samples = [];

  // The family a sample belongs to: histogram and summary samples carry suffixes.
  const familyOf = (name) => {
    if (types.has(name)) return name;
    for (const [suffix, kinds] of [['_bucket', ['histogram']], ['_sum', ['histogram', 'summary']],
                                   ['_count', ['histogram', 'summary']]]) {
      const base = name.slice(0, -suffix.length);
      if (name.endsWith(suffix) && kinds.includes(types.get(base))) return base;
    }
    return name;
  };

  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, index) => {
    try {
      if (line.includes('\r')) throw new ParseError('carriage return');
      if (line.trim() === '') return;
      if (line.startsWith('#')) {
        const meta = /^#[ \t]+(HELP|TYPE)(?:[ \t]+(\S*))?(?:[ \t](.*))?$/.exec(line);
        if (!meta) return;  // a plain comment
        const [, keyword, name = '', rest = ''] = meta;
        if (!METRIC_NAME.test(name)) throw new ParseError(`invalid metric name "${name}" in ${keyword}`);
        if (keyword === 'HELP') {
          if (helps.has(name)) throw new ParseError(`second HELP for ${name}`);
          helps.add(name);
          unescapeHelp(rest);
          return;
        }
        const type = rest.trim();
        if (!TYPES.has(type)) throw new ParseError(`unknown type "${type}"`);
        if (types.has(name)) throw new ParseError(`second TYPE for ${name}`);
        if (seenFamilies.has(name)) throw new ParseError(`TYPE for ${name} after its samples`);
        types.set(name, type);
        return;
      }
      const sample = parseSample(line);
      const family = familyOf(sample.name);
      if (family !== currentFamily) {
        if (seenFamilies.has(family)) {
          throw new ParseError(`samples of ${family} are not in one group`);
        }
        seenFamilies.add(family);
        currentFamily = family;
      }
      const key = `${sample.name}${seriesKey(sample.labels)}`;
      if (seenSeries.has(key)) throw new ParseError('the same series twice');
      seenSeries.add(key);
      const type = types.get(family);
      if (type === 'counter' && sample.value < 0) throw new ParseError('negative counter');
      if (type === 'histogram') {
        if (sample.name === family) throw new ParseError(`histogram ${family} sample without suffix`);
        if (sample.name === `${family}_bucket` && !Object.hasOwn(sample.labels, 'le')) {
          throw new ParseError('bucket without "le"');
        }
      }
      if (!samplesByFamily.has(family)) samplesByFamily.set(family, []);
      samplesByFamily.get(family).push(sample);
      samples.push(sample);
    } catch (error) {
      if (!(error instanceof ParseError)) throw error;
      throw new Error(`prometheus text line ${index + 1}: ${error.message}: ${JSON.stringify(line)}`);
    }
  });
  for (const [family, type] of types) {
    if (type === 'histogram' && samplesByFamily.has(family)) {
      checkHistogram(family, samplesByFamily.get(family));
    }
  }
  return samples;
}

// The samples called `name` whose labels include every pair of `labels`.
export function selectSamples(samples, name, labels = {}) {
  return samples.filter(
    (sample) =>
      sample.name === name &&
      Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  );
}

// The value of the one sample `selectSamples` finds; undefined when there is none, an error
// when several match (name more labels).
export function sampleValue(samples, name, labels = {}) {
  const found = selectSamples(samples, name, labels);
  if (found.length > 1) {
    throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  }
  return found[0]?.value;
}
