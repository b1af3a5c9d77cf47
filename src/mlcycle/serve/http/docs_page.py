"""The service's self-contained ``/docs`` page (no CDN): the endpoints, the inputs, examples.

Drawn from the same OpenAPI document ``/openapi.json`` serves
(:func:`mlcycle.serve.http.openapi.openapi_document`), so the page lists exactly the
documented operations.

Example:
    >>> docs_page(runtime).startswith("<!doctype html>")
    True
"""

from __future__ import annotations

import html

import orjson

from mlcycle.serve.http.openapi import openapi_document
from mlcycle.serve.http.openapi_common import example_record
from mlcycle.serve.http.parsing import DATATYPE_OF_KIND
from mlcycle.serve.model import ModelRuntime

__all__ = ["docs_page"]


def docs_page(runtime: ModelRuntime) -> str:
    """A self-contained HTML page describing the endpoints and the inputs.

    Example:
        >>> docs_page(runtime).startswith("<!doctype html>")
        True
    """
    meta = runtime.meta
    e = html.escape
    outside = "refused with 422" if runtime.out_of_range == "reject" else "scored, with warnings"
    rows = "".join(
        f"<tr><td><code>{e(c.name)}</code></td><td>{e(c.kind)}</td>"
        f"<td>{'yes' if c.nullable else 'no'}</td>"
        f"<td>{e(', '.join(c.categories[:20])) if c.categories else ''}"
        f"{' …' if c.categories and len(c.categories) > 20 else ''}</td></tr>"
        for c in runtime.input_schema.columns
    )
    example = orjson.dumps([example_record(runtime)]).decode()
    infer = orjson.dumps(
        {
            "inputs": [
                {"name": k, "shape": [1], "datatype": DATATYPE_OF_KIND[c.kind], "data": [v]}
                for (k, v), c in zip(
                    example_record(runtime).items(), runtime.input_schema.columns, strict=True
                )
            ]
        }
    ).decode()
    invocation = orjson.dumps({"dataframe_records": [example_record(runtime)]}).decode()
    doc = openapi_document(runtime)
    endpoints = "".join(
        f"<li><code>{e(method.upper())} {e(path)}</code> — {e(op.get('summary', ''))}</li>"
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    )
    version = runtime.version if runtime.version is not None else "unversioned"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(meta.name)} — mlcycle model API</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }}
code, pre {{ background: #f4f4f4; border-radius: 4px; }}
pre {{ padding: .8rem; overflow-x: auto; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .25rem .6rem; }}
</style></head><body>
<h1>Model <code>{e(meta.name)}</code> <small>version {e(str(version))}</small></h1>
<p>{e(meta.task)} model predicting <code>{e(meta.target)}</code>.
Unseen categories: <b>{e(meta.unseen_category)}</b>.
Numbers outside the training range: <b>{e(runtime.out_of_range)}</b>
({e(outside)}).
Machine-readable description: <a href="/openapi.json">/openapi.json</a>.</p>
<h2>Endpoints</h2><ul>{endpoints}</ul>
<h2>Inputs</h2>
<table><tr><th>column</th><th>kind</th><th>nullable</th><th>categories</th></tr>{rows}</table>
<h2>Examples</h2>
<pre>curl -s localhost:8000/predict -H 'Content-Type: application/json' \\
  -d '{e(example)}'</pre>
<pre>curl -s localhost:8000/invocations -H 'Content-Type: application/json' \\
  -d '{e(invocation)}'</pre>
<pre>curl -s localhost:8000/v2/models/{e(meta.name)}/infer -H 'Content-Type: application/json' \\
  -d '{e(infer)}'</pre>
<p>Errors are JSON: <code>{{"error", "why", "fix", "details": [{{"field", "error"}}],
"request_id"}}</code> with status 400 (bad JSON), 404, 413 (too large), 415 (not
<code>Content-Type: application/json</code>) or 422 (bad input).</p>
</body></html>
"""
