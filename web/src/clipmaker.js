// "Make a clip" on the session page (docs/groups.md): the owner of the lesson on screen cuts a
// range of it (the one marked with [ and ], the range note she is in, or times she types) into
// a clip she can share, with the notes of that range ticked to carry along. POST /api/clips
// with the page's token (and the sign-in cookie, which goes by itself); the server decides who
// owns the lesson, and its refusal is shown in words.
import { errorOf, formatTime, h, parseTime, preciseTime } from './util.js'

const MAX_SECONDS = 600
const DEFAULT_SECONDS = 30

export class ClipMaker {
  /**
   * session: {roomId, token, timeline, currentTime(), lesson(), duration()}
   * elements: {button, dialog}
   */
  constructor (session, { button, dialog }) {
    this.s = session
    this.button = button
    this.dialog = dialog
    this.q = (selector) => dialog.querySelector(selector)
    button.addEventListener('click', () => this.open())
    this.q('#clip-cancel').addEventListener('click', () => dialog.close())
    this.q('#clip-start').addEventListener('input', () => this.renderNotes())
    this.q('#clip-end').addEventListener('input', () => this.renderNotes())
    this.q('#clip-form').addEventListener('submit', (event) => {
      event.preventDefault()
      this.make()
    })
  }

  /** Offered to a coach or teacher while a recorded lesson is on screen. */
  show (visible) { this.button.hidden = !visible }

  /** The range to offer: a range begun with [ (to now), else the one last marked or gone
   * into, else the half minute before now. */
  range () {
    const timeline = this.s.timeline
    const now = this.s.currentTime()
    if (timeline?.rangeStart != null && Math.abs(now - timeline.rangeStart) >= 0.05) {
      return { start: Math.min(now, timeline.rangeStart), end: Math.max(now, timeline.rangeStart) }
    }
    if (timeline?.picked) return timeline.picked
    const end = Math.max(now, Math.min(DEFAULT_SECONDS, this.s.duration()))
    return { start: Math.max(0, end - DEFAULT_SECONDS), end }
  }

  open () {
    const { start, end } = this.range()
    this.q('#clip-start').value = preciseTime(start)
    this.q('#clip-end').value = preciseTime(end)
    this.q('#clip-form-status').replaceChildren()
    const list = this.q('#clip-notes-pick')
    delete list.dataset.touched
    list.replaceChildren()
    this.q('#clip-make').disabled = false
    this.renderNotes()
    this.dialog.showModal()
    this.q('#clip-title-input').focus()
  }

  /** The notes of the lesson on screen that meet the range; those inside it ticked. */
  renderNotes () {
    const start = parseTime(this.q('#clip-start').value)
    const end = parseTime(this.q('#clip-end').value)
    const list = this.q('#clip-notes-pick')
    const notes = Number.isFinite(start) && Number.isFinite(end) && end > start
      ? (this.s.timeline?.notes ?? []).filter((n) => n.start <= end && (n.end ?? n.start) >= start)
      : []
    const ticked = new Set([...list.querySelectorAll('input:checked')].map((i) => i.value))
    const untouched = list.dataset.touched !== 'true'
    list.replaceChildren(...notes.map((n) => {
      const inside = n.start >= start - 0.001 && (n.end ?? n.start) <= end + 0.001
      const time = n.end != null ? `${formatTime(n.start)}–${formatTime(n.end)}` : formatTime(n.start)
      return h('li', {}, h('label', { class: 'clip-pick' },
        h('input', {
          type: 'checkbox',
          value: n.id,
          checked: untouched ? inside : ticked.has(n.id) || (inside && !list.querySelector(`input[value="${CSS.escape(n.id)}"]`)),
          onchange: () => { list.dataset.touched = 'true' }
        }),
        ` ${time} ${n.text || n.tags.map((id) => this.s.timeline.tag(id).label).join(', ') || '(no text)'}`))
    }))
    this.q('#clip-notes-none').hidden = notes.length > 0
  }

  async make () {
    const status = this.q('#clip-form-status')
    const start = parseTime(this.q('#clip-start').value)
    const end = parseTime(this.q('#clip-end').value)
    if (!Number.isFinite(start) || !Number.isFinite(end)) {
      status.textContent = 'Write the times as minutes and seconds, like 1:05 or 1:05.5.'
      return
    }
    if (end <= start) {
      status.textContent = 'The clip must end after it starts.'
      return
    }
    if (end - start > MAX_SECONDS) {
      status.textContent = `A clip is at most ${MAX_SECONDS / 60} minutes long; this range is ${formatTime(end - start)}.`
      return
    }
    const video = this.s.lesson()
    if (!video) {
      status.textContent = 'There is no recorded lesson on screen to make a clip of.'
      return
    }
    const body = {
      video,
      start,
      end,
      title: this.q('#clip-title-input').value.trim(),
      description: this.q('#clip-description-input').value.trim(),
      room: this.s.roomId,
      notes: [...this.q('#clip-notes-pick').querySelectorAll('input:checked')].map((i) => i.value)
    }
    this.q('#clip-make').disabled = true
    status.textContent = 'Making the clip…'
    let response
    try {
      response = await fetch('/api/clips', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${this.s.token}` },
        body: JSON.stringify(body)
      })
    } catch {
      status.textContent = 'The server did not answer. Check the connection and try again.'
      this.q('#clip-make').disabled = false
      return
    }
    if (!response.ok) {
      const { message } = await errorOf(response)
      const why = message || `the server said ${response.status}`
      status.textContent = response.status === 403 || response.status === 404 || response.status === 401
        ? `The clip was not made: only the lesson’s owner may clip it (${why}).`
        : `The clip was not made: ${why}.`
      this.q('#clip-make').disabled = false
      return
    }
    const clip = await response.json()
    this.q('#clip-title-input').value = ''
    this.q('#clip-description-input').value = ''
    status.replaceChildren('The clip is made; it is being cut from the lesson. ',
      h('a', { id: 'clip-made', href: `/clips/${encodeURIComponent(clip.id)}`, text: `Open “${clip.title}”` }),
      ' to share it.')
  }
}
