// How the conversation went (docs/conversation.md), for the coach and the teacher: each
// person's share of the talk, turns, longest stretch, who spoke first after silences, turn
// switches per minute and the coach's wait; and on the lesson's timeline, the stretches of
// talk about each moment of the lesson ("you talked 4 minutes about 12:03–13:40"). Read from
// GET /api/rooms/{room}/talk: times only, never audio.
import { colourFor, errorOf, formatTime, h } from './util.js'

const EVERY_OPEN_MS = 10_000 // while the panel is open
const EVERY_CLOSED_MS = 30_000 // for the timeline's talk lanes
const GAP = 30 // s of lesson between two stretches about the same moment
const SHOWN_STRETCHES = 8

/** "40 seconds", "1 minute", "4 minutes". */
export function amount (seconds) {
  if (seconds < 59.5) return `${Math.max(1, Math.round(seconds))} second${Math.round(seconds) === 1 ? '' : 's'}`
  const minutes = Math.round(seconds / 60)
  return `${minutes} minute${minutes === 1 ? '' : 's'}`
}

/** Each person's stretches of talk about one part of the lesson: their segments in time order,
 * joined while the lesson position at their start stays within GAP of the stretch's. */
export function talkStretches (segments, gap = GAP) {
  const stretches = []
  const last = new Map() // sub -> its latest stretch
  for (const seg of [...segments].sort((a, b) => a.start - b.start)) {
    if (seg.lesson_at == null || !Number.isFinite(seg.lesson_at)) continue
    const seconds = Math.max(0, seg.end - seg.start)
    const open = last.get(seg.sub)
    if (open && seg.lesson_at >= open.from - gap && seg.lesson_at <= open.to + gap) {
      open.from = Math.min(open.from, seg.lesson_at)
      open.to = Math.max(open.to, seg.lesson_at)
      open.seconds += seconds
    } else {
      const stretch = { sub: seg.sub, from: seg.lesson_at, to: seg.lesson_at, seconds }
      stretches.push(stretch)
      last.set(seg.sub, stretch)
    }
  }
  return stretches
}

export class TalkReport {
  /** session: {base, roomId, token, sub, nameOf(sub), seek(t), changed()}; panel: <details>. */
  constructor (session, panel) {
    this.s = session
    this.panel = panel
    this.body = panel.querySelector('.talk-panel')
    this.data = null
    this.denied = false
    this._timer = null
    panel.addEventListener('toggle', () => this.schedule(0))
  }

  /** Shown to the coach and the teacher; observers never see it. */
  start (allowed) {
    this.panel.hidden = !allowed || this.denied
    if (this.panel.hidden) return this.stop()
    if (!this._timer) this.schedule(0)
  }

  stop () {
    clearTimeout(this._timer)
    this._timer = null
  }

  schedule (ms) {
    clearTimeout(this._timer)
    this._timer = setTimeout(() => this.load(), ms)
  }

  async load () {
    try {
      const response = await fetch(`/api/rooms/${encodeURIComponent(this.s.roomId)}/talk`, {
        headers: { Authorization: `Bearer ${this.s.token}` }
      })
      if (response.status === 401 || response.status === 403) {
        this.denied = true
        this.panel.hidden = true
        this.data = null
        this.s.changed()
        return this.stop()
      }
      if (!response.ok) {
        const { message } = await errorOf(response)
        this.renderProblem(message || `The server answered ${response.status}.`)
      } else {
        this.data = await response.json()
        this.render()
        this.s.changed()
      }
    } catch {
      this.renderProblem('The talk report could not be loaded; trying again.')
    }
    this.schedule(this.panel.open ? EVERY_OPEN_MS : EVERY_CLOSED_MS)
  }

  renderProblem (text) {
    if (!this.data) this.body.replaceChildren(h('p', { class: 'hint', text }))
  }

  who (sub, name) {
    return sub === this.s.sub ? 'You' : name || this.s.nameOf(sub)
  }

  render () {
    const data = this.data
    const members = (data.members ?? []).filter((m) => m.talk_s > 0 || m.turns > 0)
    const total = data.total_s || members.reduce((sum, m) => sum + m.talk_s, 0)
    if (!members.length) {
      this.body.replaceChildren(h('p', { class: 'hint', text: 'Nobody has talked yet. The report fills in as people talk.' }))
      return
    }
    const rows = members.sort((a, b) => b.talk_s - a.talk_s).map((m) => {
      const share = total > 0 ? m.talk_s / total : 0
      return h('tr', { dataset: { sub: m.sub } },
        h('th', { scope: 'row', text: this.who(m.sub, m.name) }),
        h('td', { class: 'talk-share' },
          h('span', { class: 'talk-bar', 'aria-hidden': 'true' },
            h('span', { style: { width: `${(share * 100).toFixed(1)}%`, background: colourFor(m.sub).color } })),
          h('span', { class: 'talk-percent', text: `${Math.round(share * 100)}%` })),
        h('td', { text: formatTime(m.talk_s) }),
        h('td', { text: String(m.turns) }),
        h('td', { text: formatTime(m.longest_s) }),
        h('td', { text: String(m.first_after_silence ?? 0) }))
    })
    const facts = [
      `Talk in all: ${formatTime(total)}.`,
      `Turn switches per minute: ${Number(data.switches_per_min ?? 0).toFixed(1)}.`,
      data.coach_wait_s == null
        ? 'The coach’s wait after the teacher stops: not measured yet.'
        : `The coach’s average wait after the teacher stops: ${Number(data.coach_wait_s).toFixed(1)} s.`
    ]
    const stretches = talkStretches(data.segments ?? [])
      .sort((a, b) => b.seconds - a.seconds).slice(0, SHOWN_STRETCHES)
      .sort((a, b) => a.from - b.from)
    const names = new Map(members.map((m) => [m.sub, m.name]))
    this.body.replaceChildren(
      h('table', { class: 'talk-table' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col', text: 'Who' }),
          h('th', { scope: 'col', text: 'Share of the talk' }),
          h('th', { scope: 'col', text: 'Talk' }),
          h('th', { scope: 'col', text: 'Turns' }),
          h('th', { scope: 'col', text: 'Longest' }),
          h('th', { scope: 'col', text: 'Spoke first after a silence', title: 'How often this person broke a silence of 3 seconds or more' }))),
        h('tbody', {}, rows)),
      h('p', { class: 'talk-facts', text: facts.join(' ') }),
      stretches.length
        ? h('ul', { class: 'talk-stretches', 'aria-label': 'Talk about moments of the lesson' },
          stretches.map((s) => h('li', {}, h('button', {
            type: 'button',
            class: 'link',
            onclick: () => this.s.seek(s.from),
            text: this.sentence(s, names.get(s.sub))
          }))))
        : null,
      h('p', { class: 'hint', text: 'Measured from each person’s own microphone: who talked when, never what was said. No audio is kept.' }))
  }

  /** "You talked 4 minutes about 12:03–13:40". */
  sentence (stretch, name) {
    const span = stretch.to - stretch.from >= 1
      ? `${formatTime(stretch.from)}–${formatTime(stretch.to)}`
      : formatTime(stretch.from)
    return `${this.who(stretch.sub, name)} talked ${amount(stretch.seconds)} about ${span}`
  }

  /** The timeline's talk lanes: one per person, a mark per stretch at its lesson moments. */
  lanes (duration) {
    const data = this.data
    if (!data || this.panel.hidden) return []
    const stretches = talkStretches(data.segments ?? [])
    const names = new Map((data.members ?? []).map((m) => [m.sub, m.name]))
    const subs = [...new Set(stretches.map((s) => s.sub))]
    return subs.map((sub) => {
      const mine = stretches.filter((s) => s.sub === sub)
      const colour = colourFor(sub).color
      const total = mine.reduce((sum, s) => sum + s.seconds, 0)
      const label = `${this.who(sub, names.get(sub))} talking`
      return h('div', { class: 'lane talk-lane', dataset: { talk: sub } },
        h('div', { class: 'lane-label', title: `${label}: ${amount(total)} about the lesson` },
          h('span', { class: 'swatch talk-swatch', style: { background: colour } }),
          h('span', { class: 'lane-name', text: label }),
          h('span', { class: 'lane-count', text: formatTime(total) })),
        h('div', { class: 'lane-track' }, mine.map((s) => h('button', {
          class: 'mark range talk-mark',
          tabindex: '-1',
          title: this.sentence(s, names.get(sub)),
          'aria-label': this.sentence(s, names.get(sub)),
          style: {
            left: `${Math.min(100, (s.from / duration) * 100)}%`,
            width: `${Math.max(0.8, ((s.to - s.from) / duration) * 100)}%`,
            background: colour
          },
          onclick: () => this.s.seek(s.from)
        }))))
    })
  }
}
