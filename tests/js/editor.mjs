// A stock Yjs client (y-websocket's WebsocketProvider) that edits a room's shared document
// concurrently with others, for tests/test_js_convergence.py.
//
//   node editor.mjs '<json config>'
//
// Config: {url, room, token, sub, name, edits, seed, out, pauseMs: [min, max],
//          disconnect: {after, edits, ms} | null, hardTimeoutMs}
//
// The test drives it over stdin/stdout, one line each way:
//   -> {"event": "synced"}                    joined; waiting for "go"
//   <- go                                     start editing, concurrently with the others
//   -> {"event": "edited", "sv": base64}      all edits made (offline ones included) and synced
//   <- finish                                 everyone is done: settle, report, exit
//   -> {"event": "done"}                      the report is in `out`
// Anything wrong (a refusal, a timeout, stdin closing early) ends it with a non-zero code.

import { writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'

const config = JSON.parse(process.argv[2] ?? '{}')
for (const key of ['url', 'room', 'token', 'sub', 'name', 'edits', 'out']) {
  if (config[key] === undefined) fail(`config.${key} is missing`)
}
const [pauseMin, pauseMax] = config.pauseMs ?? [5, 40]
const hardTimeout = setTimeout(() => fail('hard timeout'), config.hardTimeoutMs ?? 60000)

function emit (event) {
  process.stdout.write(JSON.stringify(event) + '\n')
}

function fail (why) {
  process.stderr.write(`editor ${config.name}: ${why}\n`)
  process.exit(2)
}

// mulberry32: a seeded generator, so a failing run can be replayed with its seed.
let seed = (config.seed ?? 1) >>> 0
function random () {
  seed = (seed + 0x6d2b79f5) >>> 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const pick = (items) => items[Math.floor(random() * items.length)]
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function within (ms, what, ready) {
  const deadline = Date.now() + ms
  while (!ready()) {
    if (Date.now() > deadline) fail(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

// ---- stdin: the test's go / finish -------------------------------------------------------

const commands = []
let stdinClosed = false
const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => commands.push(line.trim()))
lines.on('close', () => { stdinClosed = true })

async function command (name, ms) {
  await within(ms, `"${name}" from the test`, () => commands.includes(name) || stdinClosed)
  if (!commands.includes(name)) fail(`stdin closed before "${name}"`)
}

// ---- the document and the provider -------------------------------------------------------

const doc = new Y.Doc()
const plan = doc.getText('plan')
const timeline = doc.getMap('timeline')
const provider = new WebsocketProvider(config.url.replace(/^http/, 'ws') + '/yjs', config.room, doc, {
  params: { token: config.token },
  WebSocketPolyfill: WebSocket,
  disableBc: true // only the server may carry updates between clients
})

const denied = []
provider.messageHandlers[2] = (_encoder, decoder) => {
  // y-protocols auth: varuint 0 (permission denied), then the reason as a var string.
  const [, afterKind] = readVarUint(decoder.arr, decoder.pos)
  const [length, start] = readVarUint(decoder.arr, afterKind)
  denied.push(new TextDecoder().decode(decoder.arr.subarray(start, start + length)))
  decoder.pos = decoder.arr.length
}
const handleSync = provider.messageHandlers[0]
let step2Received = 0
provider.messageHandlers[0] = (encoder, decoder, prov, emitSynced, type) => {
  const syncType = decoder.arr[decoder.pos] // 0 step1, 1 step2, 2 update: one varuint byte
  handleSync(encoder, decoder, prov, emitSynced, type)
  if (syncType === 1) step2Received++
}
let connects = 0
provider.on('status', ({ status }) => { if (status === 'connected') connects++ })
let remoteUpdates = 0
doc.on('update', (_update, origin) => { if (origin === provider) remoteUpdates++ })

const svBase64 = () => Buffer.from(Y.encodeStateVector(doc)).toString('base64')

// ---- edits -------------------------------------------------------------------------------

const made = { fragments: [], deletedFragments: [], notes: {}, deletedNotes: [] }
let offlineEdits = 0
let seq = 0

function insertFragment () {
  const fragment = `[${config.name}.${seq++}]`
  // Only between fragments (start, end, or after a "]"), so no fragment is ever split.
  const text = plan.toString()
  const boundaries = [0]
  for (let i = 0; i < text.length; i++) if (text[i] === ']') boundaries.push(i + 1)
  plan.insert(pick(boundaries), fragment)
  made.fragments.push(fragment)
}

function deleteFragment () {
  const alive = made.fragments.filter((f) => !made.deletedFragments.includes(f))
  const fragment = alive.length ? pick(alive) : null
  const at = fragment ? plan.toString().indexOf(fragment) : -1
  if (at < 0) return insertFragment()
  plan.delete(at, fragment.length)
  made.deletedFragments.push(fragment)
}

function addNote () {
  const id = `${config.name}-n${seq++}`
  const text = `note ${id}`
  doc.transact(() => {
    const note = new Y.Map()
    timeline.set(id, note)
    note.set('start', Math.round(random() * 36000) / 10 + 0.25)
    note.set('text', text)
    note.set('tags', Y.Array.from(['js', config.name]))
    note.set('author', config.sub)
    note.set('created', Date.now() / 1000)
  })
  made.notes[id] = text
}

function retextNote () {
  const ids = Object.keys(made.notes)
  if (!ids.length) return addNote()
  const id = pick(ids)
  const text = `note ${id} edited ${seq++}`
  timeline.get(id).set('text', text)
  made.notes[id] = text
}

function deleteNote () {
  const ids = Object.keys(made.notes)
  if (!ids.length) return addNote()
  const id = pick(ids)
  timeline.delete(id)
  delete made.notes[id]
  made.deletedNotes.push(id)
}

function edit () {
  const r = random()
  if (r < 0.45) insertFragment()
  else if (r < 0.75) addNote()
  else if (r < 0.85) deleteFragment()
  else if (r < 0.93) retextNote()
  else deleteNote()
  if (!provider.wsconnected) offlineEdits++
}

const pause = () => sleep(pauseMin + random() * (pauseMax - pauseMin))

// ---- settling: re-sync until a round brings nothing new ----------------------------------

function readVarUint (bytes, pos) {
  let value = 0
  let scale = 1
  while (true) {
    const byte = bytes[pos++]
    value += (byte & 0x7f) * scale
    if (byte < 0x80) return [value, pos]
    scale *= 128
  }
}

function varUint (value) {
  const out = []
  while (value > 0x7f) {
    out.push(0x80 | (value & 0x7f))
    value = Math.floor(value / 128)
  }
  out.push(value)
  return out
}

async function resyncRound () {
  // Sync step 1 with our state vector; the server answers with step 2 (what we lack).
  await within(15000, 'the connection', () => provider.synced && provider.ws?.readyState === 1)
  const before = step2Received
  const sv = Y.encodeStateVector(doc)
  provider.ws.send(Uint8Array.from([0, 0, ...varUint(sv.length), ...sv]))
  await within(5000, 'the answer to sync step 1', () => step2Received > before)
}

async function settle () {
  let stable = 0
  for (let round = 0; round < 50 && stable < 2; round++) {
    const sv = svBase64()
    const updates = remoteUpdates
    await resyncRound()
    await sleep(100)
    stable = sv === svBase64() && updates === remoteUpdates ? stable + 1 : 0
  }
  if (stable < 2) fail('the document never settled')
}

function report () {
  const notes = {}
  for (const id of [...timeline.keys()].sort()) {
    const note = timeline.get(id)
    notes[id] = {
      start: note.get('start'),
      end: note.get('end') ?? null,
      text: note.get('text'),
      author: note.get('author'),
      tags: note.get('tags')?.toArray() ?? null
    }
  }
  return {
    name: config.name,
    sub: config.sub,
    seed: config.seed ?? 1,
    plan: plan.toString(),
    timeline: notes,
    state_vector: svBase64(),
    made: {
      fragments: made.fragments,
      deleted_fragments: made.deletedFragments,
      notes: made.notes,
      deleted_notes: made.deletedNotes
    },
    // Structs or deletions Yjs could not integrate yet (their dependencies never arrived):
    // content that is in the document's bytes but invisible here.
    pending: doc.store.pendingStructs !== null || doc.store.pendingDs !== null,
    offline_edits: offlineEdits,
    connects,
    denied
  }
}

// ---- the run -----------------------------------------------------------------------------

async function main () {
  await within(15000, 'the first sync', () => provider.synced)
  emit({ event: 'synced' })
  await command('go', 30000)

  let done = 0
  let cut = config.disconnect
  while (done < config.edits) {
    if (cut && done === cut.after) {
      provider.disconnect()
      await within(5000, 'the disconnect', () => !provider.wsconnected && provider.ws === null)
      const started = Date.now()
      for (let i = 0; i < cut.edits && done < config.edits; i++, done++) {
        edit()
        await sleep(cut.ms / Math.max(cut.edits, 1))
      }
      await sleep(Math.max(0, cut.ms - (Date.now() - started)))
      provider.connect()
      await within(15000, 'the sync after reconnecting', () => provider.synced)
      cut = null
      continue
    }
    edit()
    done++
    await pause()
  }
  await within(15000, 'the connection', () => provider.synced)
  emit({ event: 'edited', sv: svBase64() })

  await command('finish', 40000)
  await settle()
  writeFileSync(config.out, JSON.stringify(report(), null, 1))
  if (denied.length) fail(`refused: ${denied.join('; ')}`)
  clearTimeout(hardTimeout)
  provider.destroy()
  emit({ event: 'done' })
  process.exit(0)
}

main().catch((error) => fail(error?.stack ?? String(error)))
