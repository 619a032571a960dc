// Benchmarks one ONNX model with ONNX Runtime (onnxruntime-node, CPU execution provider).
//
//   node ort_bench.js MODEL --shape 1,3,224,224 [--threads 2] [--warmup 5] [--runs 50]
//
// Prints one JSON object with the same keys as `outpost bench --json`: load_ms, first_run_ms,
// p50_ms, p90_ms, p99_ms, mean_ms, min_ms, peak_rss_mb (process.resourceUsage().maxRSS).
// The input is deterministic pseudo-random float32 data in [-1, 1).
'use strict';
const ort = require('onnxruntime-node');

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : def;
}

async function main() {
  const model = process.argv[2];
  const shape = arg('--shape', '1,3,224,224').split(',').map(Number);
  const threads = Number(arg('--threads', '2'));
  const warmup = Number(arg('--warmup', '5'));
  const runs = Number(arg('--runs', '50'));
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const loadMs = performance.now() - t0;
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; ++i) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = (s / 2147483648) - 1;
  }
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, shape) };
  const r0 = performance.now();
  await session.run(feeds);
  const firstMs = performance.now() - r0;
  for (let i = 0; i < warmup; ++i) await session.run(feeds);
  const lat = [];
  for (let i = 0; i < runs; ++i) {
    const b = performance.now();
    await session.run(feeds);
    lat.push(performance.now() - b);
  }
  const sorted = [...lat].sort((a, b) => a - b);
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.round(p * (sorted.length - 1)))];
  console.log(JSON.stringify({
    model, backend: 'onnxruntime', threads, load_ms: loadMs, first_run_ms: firstMs,
    p50_ms: pct(0.5), p90_ms: pct(0.9), p99_ms: pct(0.99),
    mean_ms: lat.reduce((a, b) => a + b, 0) / lat.length, min_ms: sorted[0],
    peak_rss_mb: process.resourceUsage().maxRSS / 1024, runs,
  }));
}

main().catch((e) => {
  console.error(`ort_bench: ${e.message || e}`);
  process.exit(1);
});
