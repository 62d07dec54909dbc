"""The Content-Security-Policy of our HTML pages, built in one place.

Every page of ours (web/*.html and /embed) gets one policy, which names what the pages do and
nothing else (other responses state framing only, see server/middleware.py):

    default-src 'none'                          anything not listed below is refused
    script-src 'self' 'wasm-unsafe-eval'        our module scripts; WebAssembly (Pyodide, onnxruntime-web)
    worker-src 'self'                           our module workers, and the service worker (/sw.js)
    manifest-src 'self'                         the web app manifest (manifest.webmanifest)
    connect-src 'self' <model hosts>            /api/*, the runtime, /models/, and each configured
                                                model file's host (HuggingFace and its CDN hosts)
    img-src 'self' blob:                        the favicon; thumbnails and previews of local files
    style-src 'self'                            css/*.css; the widget's shadow-root sheet is a
                                                constructed stylesheet, which style-src does not govern
    object-src 'none'; base-uri 'self'; form-action 'self'
    frame-ancestors 'self'                      /embed: `*`, it is meant to be framed by any site

Two differences by page:

- /image.html fetches an image from any URL the user types (`fetchImage` in web/js/clip.js), so its
  connect-src also has `*` (any http(s) origin; the fetch is CORS, without credentials).
- /embed may be framed by any site (frame-ancestors *); it loads everything from this server, so
  it needs nothing else.

Where the policy applies: Chromium, Firefox and WebKit give a dedicated worker the policy sent with
its own script (our JavaScript is sent without one), so this policy governs what the page's main
thread does. The workers do the WebAssembly and the model downloads; 'wasm-unsafe-eval' and the model
hosts are listed so that a browser that applies the page's policy to its workers still runs, and
tests/browser/test_csp.py checks the workers under this very policy too.

No blob: workers: web/js/runtime/rpc.js wraps a worker script in a blob: only when the script is on
another origin than the page, i.e. on other sites that load /widget.js, under their own policy.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .settings import Settings

# A model host whose downloads redirect elsewhere: connect-src is checked at every hop. HuggingFace
# answers /resolve/ URLs with a redirect to its storage (cdn-lfs.huggingface.co, cdn-lfs-us-1.hf.co,
# cas-bridge.xethub.hf.co, ...); `*.host` matches subdomains at any depth.
REDIRECT_HOSTS = {
    "huggingface.co": ("https://*.huggingface.co", "https://*.hf.co"),
    "hf.co": ("https://*.huggingface.co", "https://*.hf.co"),
}

# Pages that fetch from any origin a user names (see the module docstring).
ANY_ORIGIN_PAGES = ("/image.html",)
FRAMED_BY_ANY_SITE = ("/embed",)
# Not our pages: HTML in the local models folder is the user's data, served as it is (the
# benchmarks put their transformers.js comparison pages there), and the runtime assets hold none.
NOT_OUR_PAGES = ("/models/", "/assets/")


def is_our_page(path: str) -> bool:
    return not path.startswith(NOT_OUR_PAGES)


def model_sources(settings: Settings) -> list[str]:
    """connect-src sources for every model the server offers (presets and the local folder):
    each absolute file URL's origin, and where it redirects; relative URLs are 'self'."""
    from .models import ManifestError, list_models

    try:
        models = list_models(settings)["models"]
    except (ManifestError, ValueError):
        return []  # /api/models answers with the error; no model loads, so no host is needed
    sources: list[str] = []
    for model in models:
        files = [model[part]["url"] for part in ("image", "text")] + [model.get("tokenizer", {}).get("url")]
        for file_url in filter(None, files):
            url = urlsplit(file_url)
            if not url.scheme or not url.netloc:
                continue  # served by us (/models/...)
            for source in (f"{url.scheme}://{url.netloc}", *REDIRECT_HOSTS.get(url.hostname or "", ())):
                if source not in sources:
                    sources.append(source)
    return sources


def frame_ancestors(path: str) -> str:
    return "frame-ancestors *" if path in FRAMED_BY_ANY_SITE else "frame-ancestors 'self'"


def page_policy(path: str, model_hosts: list[str]) -> str:
    """The Content-Security-Policy header value of the HTML page at `path`."""
    connect = ["'self'", *model_hosts] + (["*"] if path in ANY_ORIGIN_PAGES else [])
    directives = [
        "default-src 'none'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "connect-src " + " ".join(connect),
        "img-src 'self' blob:",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        frame_ancestors(path),
    ]
    return "; ".join(directives)


def policy_for(settings: Settings):
    """path -> policy, for the middleware. The model hosts are read from the manifests on each page
    load (a few small files), so a model added to the local folder is allowed without a restart."""
    return lambda path: page_policy(path, model_sources(settings))
