// Runs ONNX models with ONNX Runtime (onnxruntime-node) on .npy inputs and writes .npy outputs.
//
//   node ort_reference.js MODEL.onnx OUT_DIR [NAME=]INPUT.npy ...   -> OUT_DIR/output_K.npy
//   node ort_reference.js --jobs JOBS.json   (a list of {model, out_dir, inputs: [path | "name=path"]})
//
// Inputs without a NAME= are bound to the model's inputs in order. Outputs are written in the
// model's output order as output_0.npy, output_1.npy, ... These are the reference ("golden")
// outputs Outpost's tests compare against.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');
const { readNpy, writeNpy } = require('./npy');

async function runOne(model, outDir, inputs) {
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: 1,
  });
  const feeds = {};
  inputs.forEach((spec, i) => {
    const eq = spec.indexOf('=');
    const name = eq > 0 ? spec.slice(0, eq) : session.inputNames[i];
    const file = eq > 0 ? spec.slice(eq + 1) : spec;
    if (name === undefined) throw new Error(`${model}: more inputs given than the model has`);
    const t = readNpy(file);
    feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  });
  const results = await session.run(feeds);
  fs.mkdirSync(outDir, { recursive: true });
  const summary = [];
  session.outputNames.forEach((name, k) => {
    const t = results[name];
    writeNpy(path.join(outDir, `output_${k}.npy`), t.type, t.data, t.dims);
    summary.push(`${name}:${t.type}[${t.dims.join(',')}]`);
  });
  console.log(`${path.basename(model)} -> ${outDir}: ${summary.join(' ')}`);
  if (session.release) await session.release();
}

async function main() {
  const args = process.argv.slice(2);
  if (args[0] === '--jobs') {
    const jobs = JSON.parse(fs.readFileSync(args[1], 'utf8'));
    for (const j of jobs) await runOne(j.model, j.out_dir, j.inputs);
    return;
  }
  if (args.length < 2) {
    console.error('usage: node ort_reference.js MODEL OUT_DIR [NAME=]INPUT.npy ... | --jobs FILE');
    process.exit(2);
  }
  await runOne(args[0], args[1], args.slice(2));
}

main().catch((e) => {
  console.error(`ort_reference: ${e.message || e}`);
  process.exit(1);
});
