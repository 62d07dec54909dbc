// Precompiled Python for the browser (see server/precompile.py): Pyodide 0.27.7 under Node, from
// the very files the browser loads, so the .pyc come from the browser's own CPython.
//
//   node precompile.mjs build   PYODIDE_DIR INNER_PY JOBS_JSON
//       boot a plain Pyodide and repack each job's archive with .pyc (JOBS_JSON: [{src, dst,
//       kind}]; host paths, seen by Python under /host)
//   node precompile.mjs verify  PYODIDE_DIR INNER_PY LOCK STDLIB IMPORTS_JSON VOCAB IDS_JSON
//       boot as the browser would with the compiled stdlib and lock (pyapp at boot), import
//       IMPORTS_JSON and report every module that was compiled from a source file
//   node precompile.mjs measure PYODIDE_DIR PLAIN_LOCK PYC_LOCK PYC_STDLIB VOCAB ROUNDS
//       time boot, loading pyapp's packages, imports and the vocab parse, plain and
//       precompiled, alternating; medians per phase
//
// Each prints one JSON line last; anything Pyodide prints comes before it.

import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [mode, pyodideDir, ...rest] = process.argv.slice(2);
const indexURL = path.resolve(pyodideDir) + path.sep;
const { loadPyodide } = await import(pathToFileURL(path.join(indexURL, 'pyodide.mjs')).href);
const quiet = { stdout: () => {}, stderr: (line) => console.error(line) };

// The host's file system under /host, so Python reads and writes host paths directly.
function mountHost(pyodide) {
  pyodide.FS.mkdirTree('/host');
  pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: '/' }, '/host');
}

function loadInner(pyodide, innerPy) {
  // The Python half is a module of its own; run it in a fresh namespace and hand back its functions.
  const ns = pyodide.globals.get('dict')();
  pyodide.runPython(fs.readFileSync(innerPy, 'utf8'), { globals: ns });
  return ns;
}

async function build(innerPy, jobsJson) {
  // A fixed hash seed: frozenset constants are marshalled in iteration order, which follows the
  // string hashes; without it two builds of the same source could differ.
  const pyodide = await loadPyodide({ indexURL, env: { PYTHONHASHSEED: '0' }, ...quiet });
  mountHost(pyodide);
  return JSON.parse(loadInner(pyodide, innerPy).get('build')(jobsJson));
}

async function verify(innerPy, lockPath, stdlibPath, importsJson, vocabPath, idsJson) {
  const pyodide = await loadPyodide({
    indexURL, lockFileURL: lockPath, stdLibURL: stdlibPath, packages: ['pyapp'], ...quiet,
  });
  mountHost(pyodide);
  return JSON.parse(loadInner(pyodide, innerPy).get('check_imports')(importsJson, '/host' + path.resolve(vocabPath), idsJson));
}

// What a page does before its first token: boot, load pyapp with numpy and Pillow, import, parse
// the vocab. Timed in phases; Node reads files, so no network time is in it.
const PHASES = ['boot_ms', 'packages_ms', 'imports_ms', 'vocab_ms', 'total_ms'];

async function timeOnce(options, vocab) {
  const t0 = performance.now();
  const pyodide = await loadPyodide({ indexURL, ...quiet, ...options });
  const t1 = performance.now();
  await pyodide.loadPackage(['pyapp'], { messageCallback: () => {} });
  const t2 = performance.now();
  pyodide.runPython('import numpy, PIL.Image, pyapp.tokenizer');
  const t3 = performance.now();
  pyodide.globals.set('VOCAB', vocab);
  pyodide.runPython('import pyapp.tokenizer as T; T.Tokenizer.from_bytes(bytes(VOCAB))');
  const t4 = performance.now();
  return { boot_ms: t1 - t0, packages_ms: t2 - t1, imports_ms: t3 - t2, vocab_ms: t4 - t3, total_ms: t4 - t0 };
}

async function measure(plainLock, pycLock, pycStdlib, vocabPath, rounds) {
  const vocab = new Uint8Array(fs.readFileSync(vocabPath));
  const variants = {
    plain: { lockFileURL: plainLock },
    pyc: { lockFileURL: pycLock, stdLibURL: pycStdlib },
  };
  const samples = { plain: [], pyc: [] };
  await timeOnce(variants.plain, vocab); // once, not counted: the OS file cache, V8's first-use costs
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 ? ['pyc', 'plain'] : ['plain', 'pyc'];
    for (const name of order) samples[name].push(await timeOnce(variants[name], vocab));
  }
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
  const summary = {};
  for (const [name, list] of Object.entries(samples)) {
    summary[name] = Object.fromEntries(PHASES.map((k) => [k, Math.round(median(list.map((s) => s[k])))]));
  }
  return { rounds, median: summary, samples };
}

try {
  let result;
  if (mode === 'build') result = await build(...rest);
  else if (mode === 'verify') result = await verify(...rest);
  else if (mode === 'measure') result = await measure(...rest.slice(0, 4), Number(rest[4] ?? 5));
  else throw new Error(`unknown mode ${mode}: expected build, verify or measure`);
  console.log(JSON.stringify(result));
} catch (err) {
  // Only the message: Node's default report quotes the minified line of pyodide.asm.js (1 MB).
  console.error(String(err?.message ?? err));
  process.exit(1);
}
