// Runs a (QDQ) model with ONNX Runtime over a test folder and compares its top-1 with Outpost's.
//
//   node ort_check.js stack TEST_DIR OUT.npy        all samples as one batch (for `outpost run`)
//   node ort_check.js compare MODEL TEST_DIR OURS.npy
//
// TEST_DIR holds NNNN.npy samples (a batch of one each) and labels.txt (one class per line, sorted
// order); OURS.npy is Outpost's first output for the stacked batch, one row per sample. `compare`
// runs ONNX Runtime on each sample and prints one JSON object: samples, ort_accuracy,
// outpost_accuracy, agreement (share of samples with the same top-1), and the samples that differ.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');
const { readNpy, writeNpy } = require('../../tests/models/npy.js');

function top1(data) {
  let best = 0;
  for (let i = 1; i < data.length; ++i) if (data[i] > data[best]) best = i;
  return best;
}

function samples(testDir) {
  return fs.readdirSync(testDir).filter((f) => f.endsWith('.npy')).sort();
}

function stack(testDir, out) {
  const xs = samples(testDir).map((f) => readNpy(path.join(testDir, f)));
  const per = xs[0].data.length;
  const all = new Float32Array(per * xs.length);
  xs.forEach((x, i) => all.set(x.data, i * per));
  writeNpy(out, 'float32', all, [xs.length, ...xs[0].dims.slice(1)]);
}

async function compare(model, testDir, oursFile) {
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], intraOpNumThreads: 1, graphOptimizationLevel: 'all',
  });
  const files = samples(testDir);
  const ours = readNpy(oursFile);
  const classes = ours.dims[1];
  if (ours.dims[0] !== files.length) throw new Error('Outpost output rows and samples differ');
  const labels = fs.readFileSync(path.join(testDir, 'labels.txt'), 'utf8').trim().split('\n')
    .map(Number);
  if (labels.length !== files.length) throw new Error('labels and samples differ in count');
  let ortOk = 0, oursOk = 0, agree = 0;
  const differ = [];
  for (let i = 0; i < files.length; ++i) {
    const x = readNpy(path.join(testDir, files[i]));
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor(x.type, x.data, x.dims) });
    const o = top1(out[session.outputNames[0]].data);
    const u = top1(ours.data.subarray(i * classes, (i + 1) * classes));
    ortOk += o === labels[i];
    oursOk += u === labels[i];
    if (o === u) ++agree; else differ.push(files[i]);
  }
  const n = files.length;
  console.log(JSON.stringify({
    model: path.basename(model), samples: n, ort_accuracy: ortOk / n, outpost_accuracy: oursOk / n,
    agreement: agree / n, differ,
  }));
}

async function main() {
  const [cmd, ...args] = process.argv.slice(2);
  if (cmd === 'stack') return stack(...args);
  if (cmd === 'compare') return compare(...args);
  throw new Error('usage: ort_check.js stack TEST_DIR OUT.npy | compare MODEL TEST_DIR OURS.npy');
}

main().catch((e) => { console.error(e.message || e); process.exit(1); });
