// A throwaway module worker that makes the Python memory snapshot (see python-snapshot.js) and
// stores it, then says so and is terminated. It boots its own Pyodide, so the interpreter that
// serves the page is never touched. Started by the page (runtime.js makeSnapshot) when the Python
// worker asks, after a normal boot.

import { fetchWheels, installWheelsPy, storeSnapshot, makeSnapshot, withoutTrampolineSlot, PREPARE_PY, CHECK_PY, CHECK_IDS } from './python-snapshot.js';

self.onmessage = async (e) => {
  const { indexUrl, lockUrl, stdLibUrl, vocabUrl, key, lock } = e.data;
  try {
    const { loadPyodide } = await import(indexUrl + 'pyodide.mjs');
    const [pyodide, wheels, vocab] = await Promise.all([
      withoutTrampolineSlot(() => loadPyodide({ indexURL: indexUrl, lockFileURL: lockUrl, stdLibURL: stdLibUrl, _makeSnapshot: true })),
      fetchWheels(lock, indexUrl),
      fetch(vocabUrl).then(async (r) => {
        if (!r.ok) throw new Error(`HTTP ${r.status} for ${vocabUrl}`);
        return new Uint8Array(await r.arrayBuffer());
      }),
    ]);
    const tableStart = pyodide._module.wasmTable.length;
    for (const [path, bytes] of wheels) pyodide.FS.writeFile(path, bytes);
    pyodide.FS.writeFile('/tmp/bpe_vocab.txt.gz', vocab);
    pyodide.runPython(installWheelsPy());
    pyodide.runPython(PREPARE_PY);
    pyodide.FS.unlink('/tmp/bpe_vocab.txt.gz');
    if (pyodide.runPython(CHECK_PY) !== CHECK_IDS) throw new Error("the tokenizer gives other ids than OpenAI's");
    const bytes = await makeSnapshot(pyodide, tableStart);
    const stored = await storeSnapshot(key, bytes);
    self.postMessage({ ok: true, stored, bytes: bytes.byteLength });
  } catch (err) {
    self.postMessage({ ok: false, error: String(err?.message ?? err).slice(0, 500) });
  }
};
