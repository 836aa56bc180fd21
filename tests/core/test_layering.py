"""core/ is pure: it imports nothing from pipelines/, eval/, jobs/, Ray, MLflow or fsspec."""

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"
FORBIDDEN = ("pipelines", "eval", "jobs", "ray", "mlflow", "fsspec", "s3fs", "boto3", "pyarrow", "pandas", "typer")


def test_core_sources_import_nothing_upward():
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path}: imports {name}"


def test_importing_core_loads_no_platform_modules():
    code = (
        "import sys, core.predictor, core.models, core.body_models;"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=CORE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
