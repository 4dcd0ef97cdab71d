"""The page template ``dvc plots show`` and ``dvc plots diff`` fill, with the Vega libraries
inlined so the plots render with no network.

DVC's own page loads vega, vega-lite and vega-embed from a public CDN, so on a cluster without
internet access it is a blank page. ``.dvc/config`` points ``plots.html_template`` at the file
written here; the libraries come from the pinned ``vl-convert-python`` package (its
``javascript_bundle``), so the file is reproducible from ``requirements.txt`` and a test checks
that the committed copy is what the pinned package gives.
"""

from __future__ import annotations

from pathlib import Path

from mpfas.core.atomic import write_text

# where .dvc/config's plots.html_template points (DVC resolves it from the .dvc folder)
TEMPLATE = Path(".dvc/plots/offline.html")
# the major version of the Vega-Lite specs DVC writes ("$schema": .../vega-lite/v5.json)
VEGALITE_VERSION = "5.21"

_PAGE = """<!DOCTYPE html>
<!--
  The page `dvc plots show` / `dvc plots diff` fill (DVC puts the plots in the body). Generated
  by `python -m mpfas plots-template` from vl-convert-python {vlc} (requirements.txt): Vega {vega},
  Vega-Lite {vl}, Vega-Embed {embed}, inlined so the page needs no network. Vega, Vega-Lite and
  Vega-Embed: BSD-3-Clause, Copyright (c) the University of Washington Interactive Data Lab
  (https://github.com/vega); their bundled dependencies (d3 modules and others) keep their own
  permissive licenses. Do not edit by hand.
-->
<html>
<head>
<meta charset="utf-8">
<title>DVC plots</title>
<style>
  body {{ font-family: sans-serif; }}
  table {{ border-spacing: 15px; }}
</style>
<script>
{bundle}
</script>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def template_html() -> str:
    """The template text the installed ``vl-convert-python`` gives (deterministic)."""
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=VEGALITE_VERSION)
    if "</script" in bundle.lower():  # would end the inline script early
        raise RuntimeError("vl-convert's bundle contains '</script': cannot inline it")
    return _PAGE.format(vlc=_version("vl-convert-python"), vega=vl_convert.get_vega_version(),
                        vl=VEGALITE_VERSION, embed=vl_convert.get_vega_embed_version(), bundle=bundle)


def write_template(repo_root: str | Path = ".") -> Path:
    return write_text(Path(repo_root) / TEMPLATE, template_html())


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)
