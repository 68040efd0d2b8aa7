"""Rebuild .dvc/plots/page.html, the page `dvc plots show` / `dvc plots diff` fill in, with
Vega, Vega-Lite and Vega-Embed inlined so that it renders with no network.

DVC's own page loads these three scripts from a CDN (the versions below are the ones dvc-render
asks for); offline it is blank. `.dvc/config` points `plots.html_template` at our page.

    cd /tmp && npm pack vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2
    python tools/vendor_vega.py /tmp    # the folder holding the three .tgz files
"""

import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"vega": "5.20.2", "vega-lite": "5.2.0", "vega-embed": "6.18.2"}
PAGE = ROOT / ".dvc" / "plots" / "page.html"
LICENCES = ROOT / ".dvc" / "plots" / "licences"

TEMPLATE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>omniglot-mtl: DVC plots</title>
{notice}
{scripts}
    <style>
        body {{ font-family: sans-serif; }}
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    <noscript>These plots are drawn by JavaScript (Vega, inlined in this page): allow scripts.</noscript>
    {{plot_divs}}
</body>
</html>
"""


def main(folder: Path) -> None:
    scripts, names = [], []
    LICENCES.mkdir(parents=True, exist_ok=True)
    for name, version in PACKAGES.items():
        with tarfile.open(folder / f"{name}-{version}.tgz") as tgz:
            code = tgz.extractfile(f"package/build/{name}.min.js").read().decode("utf-8")
            licence = tgz.extractfile("package/LICENSE").read()
        if "</script" in code or "{plot_divs}" in code or "{scripts}" in code:
            sys.exit(f"{name}: the script cannot be inlined as it is")
        (LICENCES / f"{name}-LICENSE").write_bytes(licence)
        scripts.append(f"    <script>/* {name} {version} */\n{code}\n    </script>")
        names.append(f"{name} {version}")
    notice = (
        f"    <!-- Inlined so the page renders offline: {', '.join(names)} (BSD-3-Clause; the "
        "licences are in .dvc/plots/licences/ of the repository). Rebuilt by tools/vendor_vega.py. -->"
    )
    PAGE.write_text(TEMPLATE.format(notice=notice, scripts="\n".join(scripts)), encoding="utf-8")
    print(f"{PAGE.relative_to(ROOT)}: {PAGE.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
