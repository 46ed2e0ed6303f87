// Reading and writing timeline notes (docs/documents.md, "The document model").
import * as Y from 'yjs'

const MAX_NOTE_CHARS = 10_000
const MAX_NAME_CHARS = 200 // the server refuses a longer `authorName`

/** The notes of a timeline as plain objects, sorted by start (then id), skipping broken ones. */
export function readNotes (timeline) {
  const notes = []
  timeline.forEach((value, id) => {
    const get = (key) => (value instanceof Y.Map ? value.get(key) : value?.[key])
    const start = get('start')
    if (typeof start !== 'number' || !Number.isFinite(start)) return
    const end = get('end')
    const text = get('text')
    const tags = get('tags')
    const replies = get('replies')
    const video = get('video')
    const authorName = get('authorName')
    notes.push({
      id,
      map: value instanceof Y.Map ? value : null,
      start,
      end: typeof end === 'number' && end > start ? end : null,
      text: text instanceof Y.Text ? text.toString() : typeof text === 'string' ? text : '',
      tags: tags instanceof Y.Array ? tags.toArray().filter((t) => typeof t === 'string') : Array.isArray(tags) ? tags : [],
      author: String(get('author') ?? ''),
      // The author's name as written: still right after they left the room.
      authorName: typeof authorName === 'string' && authorName ? authorName : null,
      // The lesson (video id) it was made on; null in a note from before notes named theirs.
      video: typeof video === 'string' && video ? video : null,
      created: Number(get('created') ?? 0),
      replies: (replies instanceof Y.Array ? replies.toArray() : Array.isArray(replies) ? replies : [])
        .map((r) => (r instanceof Y.Map ? r.toJSON() : r))
        .filter((r) => r && typeof r === 'object')
    })
  })
  notes.sort((a, b) => a.start - b.start || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return notes
}

const seconds = (t) => Math.round(t * 1000) / 1000

/** The notes of one lesson: those made on it, and any that name none (written before notes
 * carried their lesson). Without a lesson (a room with no video yet) every note. */
export function notesOfLesson (notes, lesson) {
  if (!lesson) return notes
  return notes.filter((note) => !note.video || note.video === lesson)
}

/**
 * A new note by `author` at `start` (a range when `end` is given); its id. It names the lesson
 * it was made on (`video`: the one on screen, or a live lesson's recording) and the author's
 * display name (`authorName`), so it stays on its lesson and reads right after they leave.
 * `extra` keys are set too (the model allows them).
 */
export function addNote (doc, { start, end = null, tags = [], author, authorName = null, video = null, text = '', extra = {} }) {
  const id = (crypto.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`)
  const timeline = doc.getMap('timeline')
  doc.transact(() => {
    const note = new Y.Map()
    timeline.set(id, note)
    note.set('start', seconds(start))
    if (end != null && end > start) note.set('end', seconds(end))
    note.set('text', new Y.Text(text))
    note.set('tags', Y.Array.from(tags))
    note.set('author', author)
    note.set('created', Date.now() / 1000)
    note.set('replies', new Y.Array())
    if (video) note.set('video', video)
    if (authorName) note.set('authorName', authorName.slice(0, MAX_NAME_CHARS))
    for (const [key, value] of Object.entries(extra)) {
      if (value !== null && value !== undefined) note.set(key, value)
    }
  })
  return id
}

/** Make the note's text `value`, changing only what differs, so edits merge and show live. */
export function setNoteText (doc, map, value) {
  value = value.slice(0, MAX_NOTE_CHARS)
  const current = map.get('text')
  doc.transact(() => {
    if (!(current instanceof Y.Text)) {
      map.set('text', new Y.Text(value))
      return
    }
    const old = current.toString()
    if (old === value) return
    let prefix = 0
    while (prefix < old.length && prefix < value.length && old[prefix] === value[prefix]) prefix++
    let suffix = 0
    while (
      suffix < old.length - prefix && suffix < value.length - prefix &&
      old[old.length - 1 - suffix] === value[value.length - 1 - suffix]
    ) suffix++
    const removed = old.length - prefix - suffix
    if (removed > 0) current.delete(prefix, removed)
    const inserted = value.slice(prefix, value.length - suffix)
    if (inserted) current.insert(prefix, inserted)
  })
}

export function toggleTag (doc, map, tag) {
  doc.transact(() => {
    let tags = map.get('tags')
    if (!(tags instanceof Y.Array)) {
      tags = Y.Array.from(Array.isArray(tags) ? tags : [])
      map.set('tags', tags)
    }
    const index = tags.toArray().indexOf(tag)
    if (index >= 0) tags.delete(index, 1)
    else tags.push([tag])
  })
}

export function addReply (doc, map, author, text, authorName = null) {
  doc.transact(() => {
    let replies = map.get('replies')
    if (!(replies instanceof Y.Array)) {
      replies = new Y.Array()
      map.set('replies', replies)
    }
    const reply = { author, text: text.slice(0, MAX_NOTE_CHARS), created: Date.now() / 1000 }
    if (authorName) reply.authorName = authorName.slice(0, MAX_NAME_CHARS) // as a note's
    replies.push([reply])
  })
}

export function deleteNote (doc, id) {
  doc.getMap('timeline').delete(id)
}
