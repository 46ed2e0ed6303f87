// What the group, library, clip and home pages share about clips (docs/groups.md): a clip's
// length, its tag counts as chips in the frameworks' colours, and opening a clip's room.
import { sendJson } from './api.js'
import { formatTime, h } from './util.js'

export const STATUS = {
  queued: 'Waiting to be cut',
  ingesting: 'Being cut from the lesson',
  ready: 'Ready',
  failed: 'Could not be cut'
}

export const dateOf = (seconds) => new Date(seconds * 1000).toLocaleDateString(undefined, { dateStyle: 'medium' })

/** "2:07 long" */
export const lengthText = (seconds) => `${formatTime(seconds)} long`

/** Every framework's tags by id: {label, colour, framework}. */
export function tagIndex (frameworks) {
  const index = new Map()
  for (const f of frameworks) {
    for (const t of f.tags ?? []) index.set(t.id, { label: t.label, colour: t.colour, framework: f.name })
  }
  return index
}

/** A clip's tags and how many of its notes carry each, most first. */
export function tagCounts (tags, index) {
  const entries = Object.entries(tags ?? {}).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1])
  if (!entries.length) return null
  return h('ul', { class: 'clip-tags', 'aria-label': 'Tags of its notes' }, entries.map(([id, n]) => {
    const tag = index.get(id)
    return h('li', { class: 'chip on', style: { '--tag': tag?.colour ?? '#6b7280' }, dataset: { tag: id } },
      `${tag?.label ?? id} `, h('span', { class: 'clip-tag-count', text: `×${n}` }))
  }))
}

/** Open a clip: the room the server gives (its discussion in `via`, else a viewing of one's
 * own), then the session page. Throws the server's refusal. */
export async function watch (clip, via = null) {
  const { room } = await sendJson(`/api/clips/${encodeURIComponent(clip)}/watch`, via ? { via } : {})
  location.assign(`/r/${encodeURIComponent(room)}`)
}
