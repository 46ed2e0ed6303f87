// The timeline panel: notes beside the video, the composer with one key per tag, and the
// "shape of the lesson": a lane of coloured marks per tag over the video's length, with counts.
// A room can hold several lessons: all of this shows the notes of the lesson on screen only.
import { addNote, addReply, deleteNote, notesOfLesson, readNotes, setNoteText, toggleTag } from './notes.js'
import { formatTime, h } from './util.js'

const UNTAGGED = { id: '', label: 'No tag', colour: '#6b7280', key: null }

export class TimelineView {
  /**
   * session: {shared, canAnnotate, sub, authorName, nameOf(sub, written), currentTime(),
   *           seek(t), duration(), lesson(), onNotes(notes), talkLanes(duration)}
   * `lesson()` is the video id whose notes are shown and that a new note is made on.
   */
  constructor (session, elements) {
    this.s = session
    this.el = elements // {list, composer, lanes, status}
    this.items = new Map() // note id -> NoteItem
    this.notes = [] // the shown lesson's
    this.otherNotes = 0 // notes of the room's other lessons, not shown
    this.rangeStart = null
    // The range last marked ([ then ]) or the range note last gone into: what "Make a clip"
    // offers (clipmaker.js). {start, end} in seconds of the lesson on screen, or null.
    this.picked = null
    this._unbind = null
    this._scheduled = false
    this._focusNext = null
  }

  bind () {
    this._unbind?.()
    this.items.clear()
    this.el.list.replaceChildren()
    const { timeline, meta } = this.s.shared
    const changed = () => this.schedule()
    timeline.observeDeep(changed)
    meta.observeDeep(changed)
    this._unbind = () => {
      timeline.unobserveDeep(changed)
      meta.unobserveDeep(changed)
    }
    this.schedule()
  }

  framework () {
    const value = this.s.shared.meta.get('framework')
    const framework = value && typeof value.toJSON === 'function' ? value.toJSON() : value
    return framework && Array.isArray(framework.tags) ? framework : null
  }

  tags () { return this.framework()?.tags ?? [] }

  tag (id) { return this.tags().find((t) => t.id === id) ?? { ...UNTAGGED, id, label: id } }

  colourOf (note) { return note.tags.length ? this.tag(note.tags[0]).colour : UNTAGGED.colour }

  schedule () {
    if (this._scheduled) return
    this._scheduled = true
    requestAnimationFrame(() => {
      this._scheduled = false
      this.render()
    })
  }

  render () {
    const all = readNotes(this.s.shared.timeline)
    this.notes = notesOfLesson(all, this.s.lesson?.() ?? null)
    this.otherNotes = all.length - this.notes.length
    this.renderComposer()
    const seen = new Set()
    let previous = null
    for (const note of this.notes) {
      seen.add(note.id)
      let item = this.items.get(note.id)
      if (!item) {
        item = new NoteItem(this, note.id)
        this.items.set(note.id, item)
      }
      item.update(note)
      // Move only what is out of place: moving a node takes the focus away from it.
      const expected = previous ? previous.nextSibling : this.el.list.firstChild
      if (expected !== item.el) {
        if (previous) previous.after(item.el)
        else this.el.list.prepend(item.el)
      }
      previous = item.el
    }
    for (const [id, item] of this.items) {
      if (!seen.has(id)) {
        item.el.remove()
        this.items.delete(id)
      }
    }
    this.el.empty.hidden = this.notes.length > 0
    this.el.empty.textContent = this.otherNotes
      ? `No notes on this lesson yet (the room's other lessons have ${this.otherNotes}). Press a tag's key (or N) to mark the moment you are watching.`
      : 'No notes yet. Press a tag\'s key (or N) to mark the moment you are watching.'
    this.renderLanes()
    if (this._focusNext && this.items.has(this._focusNext)) {
      this.items.get(this._focusNext).focusText()
      this._focusNext = null
    }
    this.s.onNotes?.(this.notes)
  }

  renderComposer () {
    const tags = this.tags()
    const key = tags.map((t) => `${t.id}:${t.key}:${t.colour}:${t.label}`).join('|') +
      `|${this.s.canAnnotate}|${this.rangeStart}`
    if (this._composerKey === key) return
    this._composerKey = key
    const composer = this.el.composer
    composer.replaceChildren()
    if (!this.s.canAnnotate) {
      composer.append(h('p', { class: 'hint', text: 'You can read the notes; your role does not add them.' }))
      return
    }
    const buttons = h('div', { class: 'tag-buttons', role: 'group', 'aria-label': 'Add a note at the current moment' },
      h('button', { class: 'add-note', onclick: () => this.add([]), title: 'Key: N' },
        h('kbd', { text: 'N' }), ' Note'),
      tags.map((t) => h('button', {
        class: 'tag-button',
        style: { '--tag': t.colour },
        title: `Add a note tagged “${t.label}” at the current moment (key ${t.key})`,
        onclick: () => this.add([t.id]),
        dataset: { tag: t.id }
      }, h('kbd', { text: t.key }), ' ', t.label)),
      h('button', {
        class: 'range-button' + (this.rangeStart != null ? ' active' : ''),
        title: 'Start a range here ([), then end it with ] or a tag key',
        'aria-pressed': String(this.rangeStart != null),
        onclick: () => (this.rangeStart == null ? this.startRange() : this.add([]))
      }, h('kbd', { text: this.rangeStart == null ? '[' : ']' }),
      this.rangeStart == null ? ' Range' : ` End range from ${formatTime(this.rangeStart)}`)
    )
    composer.append(buttons)
    if (!tags.length) composer.append(this.frameworkPicker())
  }

  frameworkPicker () {
    const select = h('select', { 'aria-label': 'Tag framework for this room' },
      h('option', { value: '', text: 'Choose a tag framework…' }))
    fetch('/api/frameworks').then((r) => r.json()).then(({ frameworks }) => {
      for (const f of frameworks) select.append(h('option', { value: f.id, text: f.name }))
    }).catch(() => {})
    select.addEventListener('change', async () => {
      if (!select.value) return
      const response = await fetch(`/api/frameworks/${encodeURIComponent(select.value)}`)
      if (response.ok) this.s.shared.meta.set('framework', await response.json())
    })
    return h('label', { class: 'framework-picker' }, 'This room has no tags yet. ', select)
  }

  startRange () {
    this.rangeStart = this.s.currentTime()
    this._composerKey = null
    this.renderComposer()
    this.s.announce(`Range starts at ${formatTime(this.rangeStart)}. Press ] or a tag key to end it.`)
  }

  cancelRange () {
    if (this.rangeStart == null) return false
    this.rangeStart = null
    this._composerKey = null
    this.renderComposer()
    return true
  }

  add (tags) {
    if (!this.s.canAnnotate) return
    const now = this.s.currentTime()
    let start = now
    let end = null
    if (this.rangeStart != null) {
      start = Math.min(this.rangeStart, now)
      end = Math.max(this.rangeStart, now)
      if (end - start < 0.05) end = null
      else this.picked = { start: Math.round(start * 1000) / 1000, end: Math.round(end * 1000) / 1000 }
      this.cancelRange()
    }
    const id = addNote(this.s.shared.doc, {
      start,
      end,
      tags,
      author: this.s.sub,
      authorName: this.s.authorName,
      video: this.s.lesson?.() ?? null // the lesson on screen (live: its recording)
    })
    this._focusNext = id
    // Now, not on the next frame: the coach types the note's text right after the tag key, and
    // a key pressed before its text box has the focus would be lost.
    this.render()
    return id
  }

  /** The page's keys for the timeline; true if the key was used. */
  handleKey (event) {
    if (!this.s.canAnnotate || event.ctrlKey || event.metaKey || event.altKey) return false
    const tag = this.tags().find((t) => t.key === event.key)
    if (tag) { this.add([tag.id]); return true }
    if (event.key === 'n' || event.key === 'N') { this.add([]); return true }
    if (event.key === '[') { this.startRange(); return true }
    if (event.key === ']' && this.rangeStart != null) { this.add([]); return true }
    if (event.key === 'Escape') return this.cancelRange()
    return false
  }

  renderLanes () {
    const lanes = this.el.lanes
    const duration = this.s.duration()
    const tags = this.tags()
    const rows = tags.map((t) => ({ tag: t, notes: this.notes.filter((n) => n.tags.includes(t.id)) }))
    const untagged = this.notes.filter((n) => !n.tags.length || n.tags.every((id) => !tags.some((t) => t.id === id)))
    if (untagged.length || !tags.length) rows.push({ tag: UNTAGGED, notes: untagged })
    const most = Math.max(1, ...rows.map((r) => r.notes.length))
    lanes.replaceChildren(...rows.map(({ tag, notes }) => h('div', { class: 'lane', dataset: { tag: tag.id } },
      h('div', { class: 'lane-label', title: tag.label },
        h('span', { class: 'swatch', style: { background: tag.colour } }),
        h('span', { class: 'lane-name', text: tag.label }),
        h('span', { class: 'lane-count', text: String(notes.length), 'aria-label': `${notes.length} notes` }),
        h('span', { class: 'lane-bar', style: { width: `${(notes.length / most) * 100}%`, background: tag.colour } })),
      h('div', { class: 'lane-track' }, notes.map((n) => h('button', {
        class: 'mark' + (n.end != null ? ' range' : ''),
        tabindex: '-1',
        title: `${formatTime(n.start)} ${n.text.slice(0, 60)}`,
        style: {
          left: `${Math.min(100, (n.start / duration) * 100)}%`,
          width: n.end != null ? `${Math.max(0.5, ((n.end - n.start) / duration) * 100)}%` : null,
          background: tag.colour
        },
        onclick: () => this.s.seek(n.start)
      })))
    )), ...(this.s.talkLanes?.(duration) ?? [])) // and who talked about which moments (talk.js)
  }

  unbind () { this._unbind?.() }
}

class NoteItem {
  constructor (view, id) {
    this.view = view
    this.id = id
    this.note = null
    this.confirming = false
    this.time = h('button', { class: 'note-time', title: 'Jump to this moment' })
    this.time.addEventListener('click', () => this.view.s.seek(this.note.start))
    this.chips = h('span', { class: 'chips' })
    this.author = h('span', { class: 'note-author' })
    this.remove = h('button', { class: 'note-delete', hidden: true, text: 'Delete' })
    this.remove.addEventListener('click', () => this.onDelete())
    this.textarea = h('textarea', { class: 'note-text', rows: 2, 'aria-label': 'Note text', placeholder: 'What happened here?' })
    this.textarea.addEventListener('input', () => {
      if (this.note?.map) setNoteText(this.view.s.shared.doc, this.note.map, this.textarea.value)
      this.grow()
    })
    this.textarea.addEventListener('keydown', (event) => {
      if ((event.key === 'Enter' && !event.shiftKey) || event.key === 'Escape') {
        event.preventDefault()
        event.stopPropagation()
        this.view.s.returnFocus()
      }
    })
    this.textView = h('p', { class: 'note-text-view' })
    this.replies = h('ul', { class: 'replies' })
    this.replyInput = h('input', { type: 'text', class: 'reply-input', placeholder: 'Reply…', 'aria-label': 'Reply to this note', maxlength: 10000 })
    this.replyForm = h('form', { class: 'reply' }, this.replyInput, h('button', { type: 'submit', text: 'Reply' }))
    this.replyForm.addEventListener('submit', (event) => {
      event.preventDefault()
      const text = this.replyInput.value.trim()
      if (!text || !this.note?.map) return
      addReply(this.view.s.shared.doc, this.note.map, this.view.s.sub, text, this.view.s.authorName)
      this.replyInput.value = ''
    })
    this.replyInput.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') { event.stopPropagation(); this.view.s.returnFocus() }
    })
    this.el = h('li', {
      class: 'note',
      dataset: { id },
      onfocusin: () => { if (this.note?.end != null) this.view.picked = { start: this.note.start, end: this.note.end } }
    },
      h('div', { class: 'note-head' }, this.time, this.chips, this.author, this.remove),
      this.textarea, this.textView, this.replies, this.replyForm)
  }

  update (note) {
    const s = this.view.s
    const mine = note.author === s.sub && s.canAnnotate && note.map !== null
    this.note = note
    this.el.style.setProperty('--tag', this.view.colourOf(note))
    this.el.classList.toggle('mine', mine)
    this.el.dataset.author = note.author
    const fps = null
    this.time.textContent = note.end != null
      ? `${formatTime(note.start, fps)}–${formatTime(note.end, fps)}`
      : formatTime(note.start, fps)
    this.time.setAttribute('aria-label', `Jump to ${this.time.textContent}`)
    this.author.textContent = s.nameOf(note.author, note.authorName)
    // Tags: the author toggles them; everyone else sees the ones chosen.
    const tags = this.view.tags()
    const chipKey = JSON.stringify([mine, note.tags, tags.map((t) => t.id + t.colour)])
    if (this._chipKey !== chipKey) {
      this._chipKey = chipKey
      const shown = mine ? tags : note.tags.map((id) => this.view.tag(id))
      this.chips.replaceChildren(...shown.map((t) => {
        const on = note.tags.includes(t.id)
        return mine
          ? h('button', {
            class: 'chip' + (on ? ' on' : ''),
            style: { '--tag': t.colour },
            'aria-pressed': String(on),
            title: on ? `Remove the tag ${t.label}` : `Add the tag ${t.label}`,
            onclick: () => toggleTag(s.shared.doc, note.map, t.id),
            text: t.label
          })
          : h('span', { class: 'chip on', style: { '--tag': t.colour }, text: t.label })
      }))
    }
    this.remove.hidden = !mine
    this.textarea.hidden = !mine
    this.textView.hidden = mine
    if (mine) {
      if (this.textarea.value !== note.text) {
        const focused = document.activeElement === this.textarea
        const { selectionStart, selectionEnd } = this.textarea
        this.textarea.value = note.text
        if (focused) this.textarea.setSelectionRange(selectionStart, selectionEnd)
      }
      this.grow()
    } else {
      this.textView.textContent = note.text || '…'
      this.textView.classList.toggle('empty', !note.text)
    }
    const replyKey = JSON.stringify(note.replies)
    if (this._replyKey !== replyKey) {
      this._replyKey = replyKey
      this.replies.replaceChildren(...note.replies.map((r) => h('li', {},
        h('span', { class: 'reply-author', text: s.nameOf(String(r.author), typeof r.authorName === 'string' ? r.authorName : null) }),
        ' ', String(r.text ?? ''))))
    }
    this.replyForm.hidden = !s.canAnnotate || note.map === null
  }

  grow () {
    this.textarea.style.height = 'auto'
    this.textarea.style.height = `${this.textarea.scrollHeight + 2}px`
  }

  focusText () {
    if (!this.textarea.hidden) {
      this.textarea.focus()
      this.el.scrollIntoView({ block: 'nearest' })
    }
  }

  onDelete () {
    if (!this.confirming) {
      this.confirming = true
      this.remove.textContent = 'Delete for everyone?'
      this.remove.classList.add('confirm')
      setTimeout(() => {
        this.confirming = false
        this.remove.textContent = 'Delete'
        this.remove.classList.remove('confirm')
      }, 4000)
      return
    }
    deleteNote(this.view.s.shared.doc, this.id)
    this.view.s.returnFocus()
  }
}
