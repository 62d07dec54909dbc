import json
from pathlib import Path
def write(results, docs: Path):
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "benchmarks.json").write_text(json.dumps(results, indent=1, default=str))
