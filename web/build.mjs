// Build the pages: bundle src/ with esbuild into dist/, then write dist/session.html,
// dist/admin.html, dist/home.html, dist/cycle.html, dist/group.html, dist/library.html and
// dist/clip.html from the templates with the bundles' hashed names.
// `node build.mjs --watch` rebuilds on change.
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'

const here = dirname(fileURLToPath(import.meta.url))
const dist = join(here, 'dist')
const pages = {
  session: 'session.html',
  admin: 'admin.html',
  home: 'home.html',
  cycle: 'cycle.html',
  group: 'group.html',
  library: 'library.html',
  clip: 'clip.html'
}

const options = {
  entryPoints: Object.fromEntries(Object.keys(pages).map((name) => [name, join(here, 'src', `${name}.js`)])),
  outdir: dist,
  bundle: true,
  format: 'esm',
  splitting: true,
  minify: true,
  sourcemap: 'linked',
  target: ['es2020'],
  entryNames: '[name]-[hash]',
  chunkNames: 'chunk-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  logLevel: 'warning',
  legalComments: 'linked',
  plugins: [{ name: 'pages', setup: (build) => build.onEnd((result) => writePages(result)) }]
}

function writePages (result) {
  if (result.errors.length) return
  const outputs = result.metafile.outputs
  for (const [name, template] of Object.entries(pages)) {
    const entry = Object.entries(outputs).find(([, o]) => o.entryPoint?.endsWith(`src/${name}.js`))
    if (!entry) throw new Error(`no bundle for ${name}`)
    const [file, output] = entry
    const js = `/static/${basename(file)}`
    const css = output.cssBundle ? `/static/${basename(output.cssBundle)}` : ''
    const html = readFileSync(join(here, template), 'utf8').replace('%JS%', js).replace('%CSS%', css)
    writeFileSync(join(dist, template), html)
  }
  console.log(`built ${Object.keys(pages).join(', ')} into ${dist}`)
}

rmSync(dist, { recursive: true, force: true })
if (process.argv.includes('--watch')) {
  const context = await esbuild.context(options)
  await context.watch()
} else {
  await esbuild.build(options)
}
