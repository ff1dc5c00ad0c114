// node meta.mjs SUITE_DIR: the tests the suite's command-line client runs (all but browser_only), as JSON:
// [{ id, kind: "required" | "optimal" | "check", depends_on: [ids], name }]. A test without a kind is required
// (the suite's CONTRIBUTING.md).
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const suite = path.resolve(process.argv[2] || '.')
const tests = (await import(pathToFileURL(path.join(suite, 'tests/index.mjs')).href)).default
const out = []
for (const s of tests) {
  for (const t of s.tests) {
    if (t.browser_only === true) continue
    out.push({ id: t.id, kind: t.kind || 'required', depends_on: t.depends_on || [], name: t.name })
  }
}
process.stdout.write(JSON.stringify(out) + '\n')
