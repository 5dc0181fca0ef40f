// Copy the chat page's front-end libraries from node_modules/ into static/vendor/ (served by whitenoise).
// Run with `npm run vendor` after `npm ci`; the output is committed, so a fresh machine needs no Node.js.
// highlight.js ships its browser core as CommonJS only: it is wrapped into one ES module here together
// with the "common" languages, so the page loads a single file.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const modules = join(root, "node_modules");
const out = join(root, "static", "vendor");
const read = (...parts) => readFileSync(join(modules, ...parts), "utf8");
const version = (name) => JSON.parse(read(name, "package.json")).version;

mkdirSync(out, { recursive: true });
copyFileSync(join(modules, "marked/lib/marked.esm.js"), join(out, "marked.esm.js"));
copyFileSync(join(modules, "dompurify/dist/purify.es.mjs"), join(out, "purify.es.mjs"));

function highlightModule() {
  const common = read("highlight.js/lib/common.js");
  const names = [...common.matchAll(/registerLanguage\('([\w-]+)'/g)].map((m) => m[1]);
  const parts = [
    `// highlight.js ${version("highlight.js")} (BSD-3-Clause): core and the "common" languages, as one ES module.`,
    "const hljs = (() => {\nconst module = { exports: {} };\n" + read("highlight.js/lib/core.js") + "\nreturn module.exports;\n})();",
  ];
  for (const name of names) {
    const source = read("highlight.js/es/languages", `${name}.js`);
    const body = source.replace(/export\s*\{\s*(\w+)\s+as\s+default\s*\};?/, "return $1;");
    if (body === source) throw new Error(`unexpected export in highlight.js language ${name}`);
    parts.push(`hljs.registerLanguage(${JSON.stringify(name)}, (() => {\n${body}\n})());`);
  }
  parts.push("export default hljs;\n");
  return parts.join("\n");
}
writeFileSync(join(out, "highlight.mjs"), highlightModule());

const light = read("highlight.js/styles/github.min.css");
const dark = read("highlight.js/styles/github-dark.min.css");
writeFileSync(
  join(out, "highlight.css"),
  `/* highlight.js github + github-dark themes */\n${light}\n@media (prefers-color-scheme: dark) {\n${dark}\n}\n`,
);

for (const name of ["marked", "dompurify", "highlight.js"]) {
  copyFileSync(join(modules, name, "LICENSE"), join(out, `LICENSE.${name}`));
}
const versions = Object.fromEntries(["dompurify", "highlight.js", "marked"].map((n) => [n, version(n)]));
writeFileSync(join(out, "VERSIONS.json"), JSON.stringify(versions, null, 2) + "\n");
console.log("static/vendor/:", versions);
