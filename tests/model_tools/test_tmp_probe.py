import time, json
from test_browser_variants import served, server, page, LOCAL, VARIANTS  # noqa

def test_probe(page, served):
    r = page.evaluate("""async () => {
        const spec = (url) => ({url, input: 'input', output: 'output', input_dtype: 'int64'});
        const out = {};
        const t0 = performance.now();
        try {
            const info = await runtime.ort.call('loadModel', {key: 'legacy:text', spec: spec('/models/extra/text-int64.onnx'), backend: 'wasm'});
            out.load = info;
            const ids = new Int32Array(77); ids[0] = 49406; ids[1] = 320; ids[2] = 49407;
            const r = await runtime.ort.call('run', {key: 'legacy:text', data: ids, dims: [1, 77]});
            out.run = Array.from(r.data).slice(0, 4);
        } catch (err) { out.err = {code: err.code, message: err.message}; }
        out.ms = performance.now() - t0;
        const models = (await (await fetch('/api/models')).json()).models;
        for (const v of ['', '-uint8', '-int8', '-fp16']) {
            const t = performance.now();
            const e = await runtime.loadModel(models.find(m => m.id === 'rocca-vit-b-32-fp32-local' + v));
            out['load' + v] = [performance.now() - t, e.image.timings, e.text.timings];
        }
        return out;
    }""")
    print(json.dumps(r, indent=1))
    import numpy as np
    x = np.zeros((2, 3, 224, 224), np.float32)
    t = time.time(); page.evaluate("(v) => v.length", x.ravel().tolist()); print("list transfer", time.time() - t)
