// Minimal .npy (NumPy format 1.0/2.0/3.0) reader and writer for onnxruntime-node tensors.
'use strict';
const fs = require('fs');

// numpy descr (little-endian / no-endianness) <-> onnxruntime-node tensor type + typed array.
const DTYPES = {
  '<f4': ['float32', Float32Array],
  '<f8': ['float64', Float64Array],
  '<i8': ['int64', BigInt64Array],
  '<u8': ['uint64', BigUint64Array],
  '<i4': ['int32', Int32Array],
  '<u4': ['uint32', Uint32Array],
  '<i2': ['int16', Int16Array],
  '<u2': ['uint16', Uint16Array],
  '|i1': ['int8', Int8Array],
  '|u1': ['uint8', Uint8Array],
  '|b1': ['bool', Uint8Array],
};
const BY_TYPE = Object.fromEntries(Object.entries(DTYPES).map(([d, [t]]) => [t, d]));

function parseHeader(buf) {
  const magic = buf.subarray(0, 6).toString('latin1');
  if (magic !== '\x93NUMPY') throw new Error('not a .npy file (bad magic)');
  const major = buf[6];
  let hlen, start;
  if (major === 1) {
    hlen = buf.readUInt16LE(8);
    start = 10;
  } else if (major === 2 || major === 3) {
    hlen = buf.readUInt32LE(8);
    start = 12;
  } else {
    throw new Error(`unsupported .npy version ${major}`);
  }
  const header = buf.subarray(start, start + hlen).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) throw new Error(`bad .npy header: ${header}`);
  if (fortran[1] === 'True') throw new Error('fortran-ordered .npy arrays are not supported');
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  let d = descr[1];
  if (d.startsWith('=')) d = '<' + d.slice(1);
  if (!DTYPES[d]) throw new Error(`unsupported .npy dtype ${descr[1]}`);
  return { descr: d, dims, offset: start + hlen };
}

// Returns {type, data, dims} for new ort.Tensor(type, data, dims).
function readNpy(path) {
  const buf = fs.readFileSync(path);
  const { descr, dims, offset } = parseHeader(buf);
  const [type, Arr] = DTYPES[descr];
  const n = dims.reduce((a, b) => a * b, 1);
  const bytes = buf.subarray(offset, offset + n * Arr.BYTES_PER_ELEMENT);
  if (bytes.length !== n * Arr.BYTES_PER_ELEMENT) throw new Error(`${path}: truncated data`);
  // Copy into an aligned buffer (the header length does not guarantee alignment).
  const ab = new ArrayBuffer(bytes.length);
  new Uint8Array(ab).set(bytes);
  let data = new Arr(ab);
  if (type === 'bool') data = Uint8Array.from(data, (v) => (v ? 1 : 0));
  return { type, data, dims };
}

function writeNpy(path, type, data, dims) {
  const descr = BY_TYPE[type];
  if (!descr) throw new Error(`cannot write tensor type ${type} as .npy`);
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Pad so that magic(6) + version(2) + len(2) + header + '\n' is a multiple of 64.
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  let raw;
  if (type === 'bool') raw = Buffer.from(Uint8Array.from(data, (v) => (v ? 1 : 0)));
  else raw = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(path, Buffer.concat([pre, Buffer.from(header, 'latin1'), raw]));
}

module.exports = { readNpy, writeNpy };
