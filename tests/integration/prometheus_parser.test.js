// lib/prometheus.js, the exposition-format validator the /metrics tests rely on: it reads what
// sluice renders and rejects malformed text, naming the line.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { parsePrometheus, sampleValue, selectSamples } from './lib/prometheus.js';

const VALID = `# HELP sluice_requests_total Requests answered.
# TYPE sluice_requests_total counter
sluice_requests_total{route="chat",model="gpt-4o",provider="openai",status="200"} 4
sluice_requests_total{route="chat",model="a\\\\b\\"c\\nd",provider="x",status="429"} 1
# HELP sluice_ttft_seconds Time to first token: one \\\\ two\\nthree.
# TYPE sluice_ttft_seconds histogram
sluice_ttft_seconds_bucket{route="chat",le="0.125"} 2
sluice_ttft_seconds_bucket{route="chat",le="0.5"} 3
sluice_ttft_seconds_bucket{route="chat",le="+Inf"} 5
sluice_ttft_seconds_sum{route="chat"} 8.4375
sluice_ttft_seconds_count{route="chat"} 5
# a plain comment
# TYPE sluice_in_flight gauge
sluice_in_flight -3

untyped_with_timestamp{a="1",} 1.5e-07 1700000000000
special{v="nan"} NaN
special{v="inf"} +Inf
special{v="minus inf"} -Inf
`;

describe('parsePrometheus', () => {
  test('reads names, labels (unescaped), values and special floats', () => {
    const samples = parsePrometheus(VALID);
    assert.equal(samples.length, 12);
    assert.deepEqual(samples[0], {
      name: 'sluice_requests_total',
      labels: { route: 'chat', model: 'gpt-4o', provider: 'openai', status: '200' },
      value: 4,
    });
    assert.equal(samples[1].labels.model, 'a\\b"c\nd');
    assert.equal(sampleValue(samples, 'sluice_ttft_seconds_bucket', { le: '0.5' }), 3);
    assert.equal(sampleValue(samples, 'sluice_in_flight'), -3);
    assert.equal(sampleValue(samples, 'untyped_with_timestamp'), 1.5e-7);
    assert.ok(Number.isNaN(sampleValue(samples, 'special', { v: 'nan' })));
    assert.equal(sampleValue(samples, 'special', { v: 'inf' }), Infinity);
    assert.equal(sampleValue(samples, 'special', { v: 'minus inf' }), -Infinity);
    assert.equal(sampleValue(samples, 'absent'), undefined);
    assert.equal(selectSamples(samples, 'sluice_requests_total', { route: 'chat' }).length, 2);
    assert.throws(() => sampleValue(samples, 'sluice_requests_total', { route: 'chat' }), /2 samples/);
  });

  test('empty text has no samples; bytes must be UTF-8', () => {
    assert.deepEqual(parsePrometheus(''), []);
    assert.equal(parsePrometheus(Buffer.from('m{v="été"} 1\n'))[0].labels.v, 'été');
    assert.throws(() => parsePrometheus(Buffer.from([0x6d, 0x7b, 0x76, 0x3d, 0x22, 0xff, 0x22,
                                                     0x7d, 0x20, 0x31, 0x0a])), /UTF-8/);
  });

  const malformed = {
    'no final newline': 'm 1',
    'carriage return': 'm 1\r\n',
    'invalid metric name': '1m 1\n',
    'dash in metric name': 'm-x 1\n',
    'missing value': 'm\n',
    'missing value after labels': 'm{a="b"}\n',
    'value not a number': 'm one\n',
    'hex float': 'm 0x1p-2\n',
    'signed NaN': 'm -NaN\n',
    'trailing garbage': 'm 1 2 3\n',
    'bad timestamp': 'm 1 1.5\n',
    'no blank before value': 'm{a="b"}1\n',
    'invalid label name': 'm{1a="b"} 1\n',
    'colon in label name': 'm{a:b="c"} 1\n',
    'duplicate label': 'm{a="b",a="c"} 1\n',
    'unquoted label value': 'm{a=b} 1\n',
    'unterminated label value': 'm{a="b} 1\n',
    'unterminated label set': 'm{a="b" 1\n',
    'missing comma': 'm{a="b" c="d"} 1\n',
    'invalid escape': 'm{a="\\t"} 1\n',
    'invalid escape in HELP': '# HELP m a \\t b\nm 1\n',
    'unknown type': '# TYPE m countr\nm 1\n',
    'TYPE without type': '# TYPE m\nm 1\n',
    'invalid name in TYPE': '# TYPE 1m counter\n',
    'second TYPE': '# TYPE m counter\n# TYPE m counter\nm 1\n',
    'second HELP': '# HELP m a\n# HELP m b\nm 1\n',
    'TYPE after samples': 'm 1\n# TYPE m counter\n',
    'family split in two groups': 'a 1\nb 1\na{x="y"} 1\n',
    'same series twice': 'm{a="1",b="2"} 1\nm{b="2",a="1"} 2\n',
    'negative counter': '# TYPE m counter\nm -1\n',
    'histogram sample without suffix': '# TYPE h histogram\nh 1\n',
    'bucket without le': '# TYPE h histogram\nh_bucket 1\nh_sum 1\nh_count 1\n',
    'no +Inf bucket': '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
    'buckets not cumulative':
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    'le not increasing':
      '# TYPE h histogram\nh_bucket{le="2"} 1\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\n' +
      'h_sum 1\nh_count 1\n',
    'count differs from +Inf': '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n',
    'no _sum': '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_count 2\n',
  };
  for (const [what, text] of Object.entries(malformed)) {
    test(`rejects: ${what}`, () => {
      assert.throws(() => parsePrometheus(text), (error) => {
        assert.match(error.message, /^prometheus text|^histogram /);
        return true;
      });
    });
  }

  test('names the line of the error', () => {
    assert.throws(() => parsePrometheus('ok 1\nok2 1\nbad{ 1\n'), /line 3: .*"bad\{ 1"/);
  });
});
