"""`GET /openapi.json` and `GET /docs` of every app: the generated document and a page showing it.

The page is self-contained (no CDN: the platform works offline); its script reads the document
from `openapi.json` next to it, so it works on a service's port and behind the gateway alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from microcommerce.http.body import json_response
from microcommerce.http.openapi import Raw, api, build_document

SERVICE = web.AppKey("service", str)
# An app whose document is not its own route table (the gateway's merges the services').
DOCUMENT_SOURCE = web.AppKey("document_source", Callable[[web.Request], Awaitable[dict[str, Any]]])
_CACHE = web.AppKey("openapi_cache", dict)


def setup(app: web.Application, service: str) -> None:
    app[SERVICE] = service
    app[_CACHE] = {}
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs_page)


@api(summary="This API's OpenAPI 3.1 document", responses={200: dict[str, Any]})
async def openapi_json(request: web.Request) -> web.Response:
    source = request.app.get(DOCUMENT_SOURCE)
    if source is not None:
        return json_response(await source(request))
    cache = request.app[_CACHE]
    if "document" not in cache:  # the route table is frozen once the app serves
        cache["document"] = build_document(request.app, request.app[SERVICE])
    return json_response(cache["document"])


@api(summary="A page showing the OpenAPI document", responses={200: Raw("text/html")})
async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_HTML, content_type="text/html", charset="utf-8")


DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MicroCommerce API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:70em;padding:1em 2em;color:#222}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}
details{border:1px solid #ddd;border-radius:4px;margin:.4em 0;padding:.3em .6em}
summary{cursor:pointer}code,pre{font:12px/1.35 ui-monospace,monospace}
pre{background:#f6f6f6;padding:.5em;overflow:auto;max-height:30em}
.m{display:inline-block;min-width:4.5em;font-weight:bold;text-transform:uppercase}
.get{color:#1769aa}.post{color:#2e7d32}.put,.patch{color:#b26a00}.delete{color:#c62828}
.lock{color:#777;font-size:.9em}table{border-collapse:collapse}td,th{padding:.2em .6em;text-align:left}
</style></head><body>
<h1 id="title">MicroCommerce API</h1><p>Generated from the route table. Raw document:
<a href="openapi.json">openapi.json</a>.</p><div id="ops">Loading…</div>
<h2>Schemas</h2><div id="schemas"></div>
<script>
"use strict";
const el = (tag, attrs, ...kids) => {
  const node = document.createElement(tag);
  Object.assign(node, attrs || {});
  for (const kid of kids) node.append(kid);
  return node;
};
const show = (value) => el("pre", {}, JSON.stringify(value, null, 2));
function operation(path, method, op) {
  const roles = op["x-roles"] ? " roles: " + op["x-roles"].join(", ") : "";
  const lock = op.security ? el("span", {className: "lock"}, " 🔒" + roles) : "";
  const head = el("summary", {}, el("span", {className: "m " + method}, method), " ",
                  el("code", {}, path), " ", op.summary || "", lock);
  const box = el("details", {}, head);
  if (op.description) box.append(el("p", {}, op.description));
  if (op.parameters) {
    const rows = op.parameters.map(p => el("tr", {}, el("td", {}, el("code", {}, p.name)),
      el("td", {}, p.in), el("td", {}, p.required ? "required" : "optional"),
      el("td", {}, el("code", {}, JSON.stringify(p.schema)))));
    box.append(el("h4", {}, "Parameters"), el("table", {}, ...rows));
  }
  if (op.requestBody) {
    box.append(el("h4", {}, "Body" + (op.requestBody.required ? "" : " (optional)")),
               show(op.requestBody.content["application/json"].schema));
  }
  box.append(el("h4", {}, "Responses"));
  for (const [status, resp] of Object.entries(op.responses)) {
    const media = resp.content ? Object.entries(resp.content)[0] : null;
    box.append(el("div", {}, el("b", {}, status), " " + resp.description + " ",
                  media ? el("code", {}, JSON.stringify(media[1].schema)) : ""));
  }
  return box;
}
fetch("openapi.json").then(r => r.json()).then(doc => {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  const ops = document.getElementById("ops");
  ops.textContent = "";
  const byTag = {};
  for (const [path, item] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(item))
      (byTag[(op.tags || ["other"])[0]] ||= []).push(operation(path, method, op));
  for (const [tag, boxes] of Object.entries(byTag)) ops.append(el("h2", {}, tag), ...boxes);
  const schemas = document.getElementById("schemas");
  for (const [name, schema] of Object.entries(doc.components.schemas))
    schemas.append(el("details", {id: "schema-" + name}, el("summary", {}, name), show(schema)));
}).catch(err => { document.getElementById("ops").textContent = "Could not load: " + err; });
</script></body></html>
"""
