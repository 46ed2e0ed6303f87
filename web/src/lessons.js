// The room's lessons (docs/documents.md): a room can hold several videos over time, the upload
// it was made with, a live lesson's recording, another one added later. The server keeps the
// document's `lessons` root (video id -> {added, kind}); the page only reads it. `meta.video`
// is the one the room shows: a member with `edit` may choose another, and every page then
// watches that one with its own notes.
import { plain } from './doc.js'
import { $, h } from './util.js'

const KINDS = ['upload', 'recording']

/** The lessons as [{video, added, kind}], oldest first; entries that do not read as one are
 * left out (as server/documents/lessons.py does). */
export function readLessons (map) {
  const lessons = []
  map.forEach((value, video) => {
    const entry = plain(value)
    if (!entry || typeof entry !== 'object') return
    const kind = entry.kind ?? 'upload'
    if (typeof entry.added !== 'number' || !Number.isFinite(entry.added) || !KINDS.includes(kind)) return
    lessons.push({ video, added: entry.added, kind })
  })
  return lessons.sort((a, b) => a.added - b.added || (a.video < b.video ? -1 : a.video > b.video ? 1 : 0))
}

const day = (date) => date.toLocaleDateString('en-GB', { day: 'numeric', month: 'short' })
const clock = (date) => date.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' })

/** A lesson's name when its record cannot be read (someone else's video): kind and date. */
export function fallbackLabel (lesson) {
  const added = new Date(lesson.added * 1000)
  return lesson.kind === 'recording' ? `Live lesson, ${day(added)} ${clock(added)}` : `Lesson added ${day(added)}`
}

/**
 * The lesson switcher beside the video controls: shown when the room has two lessons or more,
 * each labelled with its video's title where this token may read the record
 * (`GET /api/videos/{id}`: a coach's or teacher's own videos and the room's current one), else
 * by kind and date. session: {token, canChoose, current(), live(), choose(video)}.
 */
export class LessonSwitcher {
  constructor (root, session) {
    this.root = root
    this.s = session
    this.select = $('#lesson-select', root)
    this.hint = $('#lesson-hint', root)
    this.lessons = []
    this.titles = new Map() // video id -> its title, once read
    this.asked = new Set() // records asked for: each once (a 404 stays one)
    this._key = null
    this.select.addEventListener('change', () => {
      const video = this.select.value
      if (video && video !== this.s.current() && this.s.canChoose && !this.s.live()) this.s.choose(video)
    })
  }

  update (lessons) {
    this.lessons = lessons
    if (lessons.length >= 2) for (const lesson of lessons) this.ask(lesson.video)
    this.render()
  }

  /** A title learnt elsewhere (the record of the video on screen). */
  setTitle (video, title) {
    if (!title || this.titles.get(video) === title) return
    this.titles.set(video, title)
    this.render()
  }

  async ask (video) {
    if (this.asked.has(video) || this.titles.has(video)) return
    this.asked.add(video)
    try {
      const response = await fetch(`/api/videos/${encodeURIComponent(video)}`, {
        headers: { Authorization: `Bearer ${this.s.token}` }
      })
      if (response.ok) this.setTitle(video, (await response.json()).title)
    } catch { /* labelled by kind and date */ }
  }

  label (video) {
    return this.labels().get(video) ?? video
  }

  /** Titles, or kind and date; two lessons with the same title get their dates too. */
  labels () {
    const named = this.lessons.map((lesson) => [lesson, this.titles.get(lesson.video) ?? fallbackLabel(lesson)])
    const counts = new Map()
    for (const [, name] of named) counts.set(name, (counts.get(name) ?? 0) + 1)
    return new Map(named.map(([lesson, name]) => [
      lesson.video,
      counts.get(name) > 1 && this.titles.has(lesson.video) ? `${name} (${fallbackLabel(lesson)})` : name
    ]))
  }

  render () {
    const shown = this.lessons.length >= 2
    this.root.hidden = !shown
    document.body.dataset.lessons = String(this.lessons.length)
    if (!shown) return
    const current = this.s.current()
    const live = this.s.live()
    const labels = this.labels()
    const known = this.lessons.some((lesson) => lesson.video === current)
    const key = JSON.stringify([[...labels], current, known])
    if (key !== this._key) { // rebuilt only when it changed: rebuilding closes an open list
      this._key = key
      const options = this.lessons.map((lesson) => {
        const on = lesson.video === current
        return h('option', {
          value: lesson.video,
          text: `${labels.get(lesson.video)}${on ? ' (showing)' : ''}`,
          dataset: on ? { kind: lesson.kind, current: 'yes' } : { kind: lesson.kind }
        })
      })
      // A live lesson's recording is not one of the lessons until it ends.
      if (!known) options.unshift(h('option', { value: current ?? '', text: live ? 'The live lesson (showing)' : 'Another video (showing)', dataset: { current: 'yes' } }))
      this.select.replaceChildren(...options)
    }
    this.select.value = current ?? ''
    this.select.disabled = !this.s.canChoose || live
    const hint = live
      ? 'The room is live: another lesson can be chosen when it ends.'
      : this.s.canChoose
        ? 'Choosing a lesson shows it to everyone in the room, with its own notes.'
        : 'The coach or the teacher chooses which lesson the room watches.'
    this.hint.textContent = hint
    // The list may be cut short beside the controls: the whole name shows on hover.
    this.select.title = labels.get(current) ?? ''
  }
}
