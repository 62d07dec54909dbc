"""pyapp: CLIP's input pipeline in plain Python, identical to OpenAI CLIP's.

Runs in CPython and, unchanged, in Pyodide in the browser. Only `pyapp.js_bridge` touches the
browser (`js`, `pyodide.ffi`); it is imported by the web worker, never from here.
"""

__version__ = "0.1.0"
