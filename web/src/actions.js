// A coaching cycle's action steps (docs/cycles.md): "what we agreed to try", co-edited live in
// the document's `actions` map as the plan is. Each keeps its author; its text, status and the
// notes that are its evidence change as coach and teacher talk. A new session of the cycle
// opens with the last one's steps, so they are in view from its first moment.
import * as Y from 'yjs'
import { readNotes } from './notes.js'
import { formatTime, h } from './util.js'

export const STATUSES = [
  ['planned', 'Planned'],
  ['tried', 'Tried'],
  ['worked', 'Worked'],
  ['adapt', 'Adapt it'],
  ['dropped', 'Dropped']
]
const MAX_CHARS = 2000 // the server refuses a longer text, and an empty one
const MAX_EVIDENCE = 50
const MAX_NAME_CHARS = 200

/** The actions as plain objects, oldest first, skipping broken ones. */
export function readActions (actions) {
  const found = []
  actions.forEach((value, id) => {
    if (!(value instanceof Y.Map)) return
    const text = value.get('text')
    const evidence = value.get('evidence')
    if (typeof text !== 'string') return
    found.push({
      id,
      map: value,
      text,
      author: String(value.get('author') ?? ''),
      authorName: String(value.get('authorName') ?? '') || null,
      status: String(value.get('status') ?? 'planned'),
      created: Number(value.get('created') ?? 0),
      evidence: evidence instanceof Y.Array ? evidence.toArray().filter((n) => typeof n === 'string') : []
    })
  })
  return found.sort((a, b) => a.created - b.created || (a.id < b.id ? -1 : 1))
}

/** When a step last changed: a cycle takes the newest version of each step, even one written
 * in an earlier session after the next began. */
function touch (map) {
  map.set('updated', Date.now() / 1000)
}

export class ActionsPanel {
  /**
   * s: {shared, sub, authorName, canEdit, lesson(), seek(t), showLesson(video), nameOf(sub, written),
   *     toast(text)}; el: the panel's section.
   * `cited` (note id -> {room, video, start, text}) names notes of earlier sessions, from the
   * cycle's API when the person is signed in.
   */
  constructor (s, el) {
    this.s = s
    this.el = el
    this.cited = new Map()
    this.list = el.querySelector('ol')
    this.form = el.querySelector('form')
    this.input = this.form.querySelector('input')
    this.form.hidden = !s.canEdit
    this.form.addEventListener('submit', (event) => {
      event.preventDefault()
      this.add(this.input.value)
    })
    this.scheduled = false
  }

  bind () {
    const { shared } = this.s
    const again = () => this.schedule()
    shared.doc.getMap('actions').observeDeep(again)
    shared.timeline.observeDeep(again)
    this.schedule()
  }

  get actions () { return this.s.shared.doc.getMap('actions') }

  setCited (evidence) {
    this.cited = new Map(Object.entries(evidence ?? {}))
    this.schedule()
  }

  add (text) {
    const value = text.trim().slice(0, MAX_CHARS)
    if (!value) return
    const id = `a-${crypto.randomUUID?.() ?? Date.now().toString(36) + Math.random().toString(36).slice(2)}`
    this.s.shared.transact(() => {
      this.actions.set(id, new Y.Map([
        ['text', value],
        ['author', this.s.sub],
        ['authorName', (this.s.authorName ?? '').slice(0, MAX_NAME_CHARS)],
        ['status', 'planned'],
        ['created', Date.now() / 1000],
        ['updated', Date.now() / 1000],
        ['evidence', new Y.Array()]
      ]))
    })
    this.input.value = ''
  }

  schedule () {
    if (this.scheduled) return
    this.scheduled = true
    requestAnimationFrame(() => {
      this.scheduled = false
      this.render()
    })
  }

  render () {
    const actions = readActions(this.actions)
    const notes = new Map(readNotes(this.s.shared.timeline).map((n) => [n.id, n]))
    this.el.hidden = actions.length === 0 && !this.s.canEdit && !this.s.inCycle
    this.el.querySelector('.actions-empty').hidden = actions.length > 0
    // Each step keeps its element, changed in place: the field someone types in is never
    // moved or redrawn, so their cursor and keys stay where they are.
    const items = this.items ?? (this.items = new Map())
    const wanted = new Set(actions.map((a) => a.id))
    for (const [id, item] of items) {
      if (!wanted.has(id)) {
        item.li.remove()
        items.delete(id)
      }
    }
    let previous = null
    for (const action of actions) {
      let item = items.get(action.id)
      if (!item) {
        item = this.item(action)
        items.set(action.id, item)
      }
      this.update(item, action, notes)
      const expected = previous ? previous.nextSibling : this.list.firstChild
      if (expected !== item.li) this.list.insertBefore(item.li, expected)
      previous = item.li
    }
  }

  item (action) {
    const { canEdit } = this.s
    const li = h('li', { class: 'action', dataset: { id: action.id } })
    const text = canEdit
      ? h('textarea', {
        class: 'action-text',
        rows: 2,
        maxlength: MAX_CHARS,
        'aria-label': 'What to try',
        oninput: (event) => this.setText(action, event.target.value)
      })
      : h('p', { class: 'action-text' })
    const status = h('select', {
      class: 'action-status',
      'aria-label': 'How it went',
      disabled: !canEdit,
      onchange: (event) => this.setField(action, 'status', event.target.value)
    }, STATUSES.map(([value, label]) => h('option', { value }, label)))
    const by = h('span', { class: 'action-by' })
    const row = h('div', { class: 'action-row' }, status, by,
      canEdit ? h('button', { type: 'button', class: 'link action-remove', onclick: () => this.remove(action), text: 'Remove' }) : null)
    const evidence = h('div', { class: 'action-evidence' })
    li.append(text, row, evidence)
    return { li, text, status, by, evidence }
  }

  update (item, action, notes) {
    item.li.className = `action status-${action.status}`
    if (item.text.tagName === 'TEXTAREA') {
      if (document.activeElement !== item.text && item.text.value !== action.text) item.text.value = action.text
    } else {
      item.text.textContent = action.text
    }
    if (document.activeElement !== item.status) item.status.value = action.status
    item.by.textContent = `by ${this.s.nameOf(action.author, action.authorName)}`
    if (item.evidence.contains(document.activeElement)) return // choosing a note: left alone
    const chips = action.evidence.map((id) => this.chip(action, id, notes.get(id)))
    item.evidence.replaceChildren(
      chips.length ? h('span', { class: 'hint', text: 'Evidence:' }) : null, ...chips,
      this.s.canEdit ? this.evidencePicker(action, notes) ?? '' : '')
  }

  /** A cited note: a click goes to its moment (here, or in the session it was written in). */
  chip (action, id, note) {
    const cited = note ?? this.cited.get(id)
    const label = cited ? `${formatTime(cited.start)} ${cited.text || '(no text)'}`.slice(0, 80) : 'a note that is gone'
    const go = () => {
      if (note) return this.goTo(note)
      if (cited?.room) location.assign(`/r/${encodeURIComponent(cited.room)}#at=${cited.start}&lesson=${encodeURIComponent(cited.video ?? '')}`)
    }
    return h('span', { class: 'evidence' },
      h('button', { type: 'button', class: 'evidence-go', disabled: !cited, title: cited ? 'Go to this moment' : null, onclick: go, text: label }),
      this.s.canEdit
        ? h('button', { type: 'button', class: 'evidence-remove', 'aria-label': 'Remove this evidence', onclick: () => this.unlink(action, id), text: '×' })
        : null)
  }

  goTo (note) {
    if (note.video && note.video !== this.s.lesson()) {
      this.s.showLesson(note.video)
      this.s.toast('Showing that note’s lesson; press its moment again once it is on screen.')
      return
    }
    this.s.seek(note.start)
  }

  evidencePicker (action, notes) {
    const lesson = this.s.lesson()
    const choices = [...notes.values()]
      .filter((n) => (!lesson || !n.video || n.video === lesson) && !action.evidence.includes(n.id))
    if (!choices.length || action.evidence.length >= MAX_EVIDENCE) return null
    return h('select', {
      class: 'evidence-add',
      'aria-label': 'Link a note of this lesson as evidence',
      onchange: (event) => {
        if (event.target.value) this.link(action, event.target.value)
      }
    }, h('option', { value: '' }, '+ Link a note'),
    choices.map((n) => h('option', { value: n.id }, `${formatTime(n.start)} ${n.text || n.tags.join(', ') || '(no text)'}`.slice(0, 70))))
  }

  setText (action, value) {
    const text = value.slice(0, MAX_CHARS)
    if (!text.trim()) return // an empty step is refused; it keeps its last text until removed
    this.setField(action, 'text', text)
  }

  setField (action, key, value) {
    const map = this.actions.get(action.id)
    if (!(map instanceof Y.Map) || map.get(key) === value) return
    this.s.shared.transact(() => {
      map.set(key, value)
      touch(map)
    })
  }

  link (action, noteId) {
    const map = this.actions.get(action.id)
    const evidence = map instanceof Y.Map ? map.get('evidence') : null
    this.s.shared.transact(() => {
      if (evidence instanceof Y.Array) evidence.push([noteId])
      else map.set('evidence', Y.Array.from([noteId]))
      touch(map)
    })
  }

  unlink (action, noteId) {
    const map = this.actions.get(action.id)
    const evidence = map instanceof Y.Map ? map.get('evidence') : null
    if (!(evidence instanceof Y.Array)) return
    const index = evidence.toArray().indexOf(noteId)
    if (index < 0) return
    this.s.shared.transact(() => {
      evidence.delete(index, 1)
      touch(map)
    })
  }

  remove (action) {
    this.s.shared.transact(() => this.actions.delete(action.id))
  }
}
