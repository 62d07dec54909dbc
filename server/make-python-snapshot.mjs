// Make the Python memory snapshot a first visit restores (see server/python_snapshot.py): Pyodide
// under Node boots exactly as the browser's throwaway snapshot worker does (web/js/runtime/
// snapshot-worker.js), with the same prepare step and check, read from the same module, and
// writes the heap (with the records of numpy's and Pillow's libraries) to a file.
//
// node make-python-snapshot.mjs PYODIDE_DIR LOCK_PATH STDLIB_ZIP VOCAB_PATH SNAPSHOT_JS OUT_PATH
// Prints one JSON line: { bytes, ms }.

import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [pyodideDir, lockPath, stdlibPath, vocabPath, snapshotModule, outPath] = process.argv.slice(2);
const { PREPARE_PY, CHECK_PY, CHECK_IDS, SNAPSHOT_WHEELS, installWheelsPy, makeSnapshot } = await import(pathToFileURL(snapshotModule).href);
const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, 'pyodide.mjs')).href);

const t0 = performance.now();
const lock = JSON.parse(fs.readFileSync(lockPath, 'utf8'));
// A fixed hash seed: every build of the same inputs holds the same dict layouts. Randomness
// that matters (the `random` module) is re-seeded after each restore.
const pyodide = await loadPyodide({
  indexURL: pyodideDir + path.sep,
  lockFileURL: lockPath,
  stdLibURL: stdlibPath,
  _makeSnapshot: true,
  env: { PYTHONHASHSEED: '0' },
});
const tableStart = pyodide._module.wasmTable.length;
for (const name of SNAPSHOT_WHEELS) {
  pyodide.FS.writeFile(`/tmp/${name}.whl`, fs.readFileSync(path.join(pyodideDir, lock.packages[name].file_name)));
}
pyodide.FS.writeFile('/tmp/bpe_vocab.txt.gz', fs.readFileSync(vocabPath));
pyodide.runPython(installWheelsPy());
pyodide.runPython(PREPARE_PY);
pyodide.FS.unlink('/tmp/bpe_vocab.txt.gz');
const ids = pyodide.runPython(CHECK_PY);
if (ids !== CHECK_IDS) {
  console.error(`the tokenizer gives ${ids}, not OpenAI's ${CHECK_IDS}`);
  process.exit(1);
}
const bytes = await makeSnapshot(pyodide, tableStart);
fs.writeFileSync(outPath, bytes);
console.log(JSON.stringify({ bytes: bytes.byteLength, ms: Math.round(performance.now() - t0) }));
