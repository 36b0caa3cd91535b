// Parse mermaid documents with mermaid's own parser and report what it understood.
//
// Reads one JSON object per line on stdin, {"text": "<a mermaid document>"}, and answers
// one JSON line each: {"ok": false, "error": "..."} when mermaid rejects the document, else
// {"ok": true, "type", "title", ...} with the diagram's content as mermaid's database holds
// it: flowchart vertices, edges, subgraphs and class definitions, or gantt sections and
// tasks. Texts are given as mermaid would display them (`display`), see `shown` below.
//
// mermaid needs a DOM even to parse (DOMPurify, d3), so it runs under jsdom.
// PLANBOARD_JS_ROOT names the folder whose node_modules hold mermaid and jsdom
// (tests/utils/jstools.py installs them there, pinned by tests/js/package-lock.json).
import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const root = process.env.PLANBOARD_JS_ROOT;
if (!root) {
  console.error("PLANBOARD_JS_ROOT is not set (the folder holding node_modules)");
  process.exit(2);
}
const require = createRequire(join(root, "package.json"));
const { JSDOM } = require("jsdom");
const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import(pathToFileURL(require.resolve("mermaid")).href);
mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });

const decoder = dom.window.document.createElement("div");

// The text a reader sees: mermaid parses `#name;` / `#123;` entity codes into private
// markers and, after rendering, turns the markers into HTML entities (cleanUpSvgCode →
// decodeEntities in mermaid's source), which the browser's HTML parser decodes; this
// does the same, line by line (a `<br>` in a label is a line break, kept as `<br>`).
function shown(text) {
  if (typeof text !== "string") return text;
  return text
    .split(/<br\s*\/?>/)
    .map((line) => {
      decoder.innerHTML = line.replace(/ﬂ°°/g, "&#").replace(/ﬂ°/g, "&").replace(/¶ß/g, ";");
      return decoder.textContent;
    })
    .join("<br>");
}

function dateOf(value) {
  return value instanceof Date && !Number.isNaN(value.getTime())
    ? value.toISOString().slice(0, 10)
    : null;
}

function describe(diagram) {
  const db = diagram.db;
  const out = {
    ok: true,
    type: diagram.type,
    title: shown(db.getDiagramTitle?.() ?? ""),
    acc_title: shown(db.getAccTitle?.() ?? ""),
    acc_description: shown(db.getAccDescription?.() ?? ""),
  };
  if (diagram.type.startsWith("flowchart")) {
    out.direction = db.getDirection();
    out.vertices = [...db.getVertices().values()].map((v) => ({
      id: v.id,
      text: v.text,
      display: shown(v.text),
      label_type: v.labelType,
      classes: v.classes,
      link: v.link ?? null,
    }));
    out.edges = db.getEdges().map((e) => ({
      start: e.start,
      end: e.end,
      type: e.type,
      text: e.text,
      style: e.style ?? [],
    }));
    out.subgraphs = db.getSubGraphs().map((s) => ({
      id: s.id,
      title: s.title,
      display: shown(s.title),
      label_type: s.labelType,
      nodes: s.nodes,
    }));
    out.class_defs = Object.fromEntries(
      [...db.getClasses().entries()].map(([name, c]) => [name, c.styles]),
    );
  } else if (diagram.type === "gantt") {
    out.date_format = db.getDateFormat();
    out.sections = db.getSections().map(shown);
    out.tasks = db.getTasks().map((t) => ({
      id: t.id,
      text: t.task,
      display: shown(t.task),
      section: shown(t.section),
      start: dateOf(t.startTime),
      end: dateOf(t.endTime),
      milestone: Boolean(t.milestone),
      crit: Boolean(t.crit),
      done: Boolean(t.done),
      active: Boolean(t.active),
    }));
  }
  return out;
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  let answer;
  try {
    const { text } = JSON.parse(line);
    await mermaid.parse(text); // throws on a syntax error, like a renderer would
    answer = describe(await mermaid.mermaidAPI.getDiagramFromText(text));
  } catch (error) {
    answer = { ok: false, error: String(error?.message ?? error) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
