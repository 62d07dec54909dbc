// The files of a wheel (a zip), read in JS: a restored Python snapshot needs numpy's and Pillow's
// compiled libraries before its interpreter exists (python-snapshot.js), and their other files
// written straight into Pyodide's file system after. The browser inflates (DecompressionStream),
// off the wasm heap. The caller has already checked the wheel's sha256 against our lock.

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

// -> [[name, Uint8Array], ...] in the zip's order; directories left out.
export async function wheelFiles(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = -1;
  for (let at = bytes.byteLength - 22; at >= Math.max(0, bytes.byteLength - 22 - 0xffff); at--) {
    if (view.getUint32(at, true) === EOCD) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip file (no end of central directory)');
  const count = view.getUint16(eocd + 10, true);
  let at = view.getUint32(eocd + 16, true);
  const decoder = new TextDecoder();
  const entries = [];
  for (let i = 0; i < count; i++) {
    if (view.getUint32(at, true) !== CENTRAL) throw new Error(`zip entry ${i}: bad central directory record`);
    const method = view.getUint16(at + 10, true);
    const packed = view.getUint32(at + 20, true);
    const size = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const skip = nameLength + view.getUint16(at + 30, true) + view.getUint16(at + 32, true);
    const local = view.getUint32(at + 42, true);
    const name = decoder.decode(bytes.subarray(at + 46, at + 46 + nameLength));
    at += 46 + skip;
    if (name.endsWith('/')) continue;
    if (view.getUint32(local, true) !== LOCAL) throw new Error(`${name}: bad local header`);
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    entries.push({ name, method, size, data: bytes.subarray(start, start + packed) });
  }
  return Promise.all(
    entries.map(async ({ name, method, size, data }) => {
      let out;
      if (method === 0) out = data;
      else if (method === 8) out = new Uint8Array(await new Response(new Blob([data]).stream().pipeThrough(new DecompressionStream('deflate-raw'))).arrayBuffer());
      else throw new Error(`${name}: zip method ${method} is not supported`);
      if (out.byteLength !== size) throw new Error(`${name}: ${out.byteLength} bytes inflated, the zip says ${size}`);
      return [name, out];
    }),
  );
}
