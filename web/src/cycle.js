// The cycle page at /c/{cycle} (docs/cycles.md): a teacher's problem of practice across
// sessions. Its focus and success criteria, the action steps with their evidence (each opens
// its session at that moment), the sessions in order, the progress charts (Observable Plot:
// a line per tag's rate across lessons, rubric levels over time by scorer) and the scores,
// which teacher and coach each give and which are never merged.
import * as Plot from '@observablehq/plot'
import { STATUSES } from './actions.js'
import { api, json, sendJson } from './api.js'
import './style.css'
import { $, formatTime, h } from './util.js'

const STATUS_LABEL = Object.fromEntries(STATUSES)
const CYCLE_STATUS = { proposed: 'proposed: it starts when the teacher accepts', active: 'active', closed: 'closed' }
const KIND = { planning: 'Planning', observation: 'Observation', review: 'Review' }
const CHART_WIDTH = 720

const cycleId = decodeURIComponent(location.pathname.split('/')[2] ?? '')
const base = `/api/cycles/${encodeURIComponent(cycleId)}`
let me = null
let cycle = null
let myVideos = []

const dateOf = (seconds) => new Date(seconds * 1000).toLocaleDateString(undefined, { dateStyle: 'medium' })
const nameOf = (id) => (id === me?.id ? `${cycle.names[id] ?? id} (you)` : cycle.names[id] ?? id)
const lessonTitle = (video) => cycle.lesson_info[video]?.title ?? 'a deleted lesson'
/** The lessons still in the cycle (a deleted video leaves it), in the order they joined. */
const lessons = () => cycle.lessons.filter((v) => v in cycle.lesson_info)

function problem (text) {
  const el = $('#cycle-problem')
  el.textContent = text
  el.hidden = false
}

/** Where a note is: its session, at its moment, on its lesson. */
function evidenceLink (noteId) {
  const note = cycle.evidence[noteId]
  if (!note) return h('span', { class: 'evidence gone', text: 'a note that is gone' })
  const href = `/r/${encodeURIComponent(note.room)}#at=${note.start}&lesson=${encodeURIComponent(note.video ?? '')}`
  const text = `${formatTime(note.start)} ${note.text || note.tags.join(', ') || '(no text)'}`
  return h('a', { class: 'evidence evidence-go', href, title: `Open the session at ${formatTime(note.start)} of ${lessonTitle(note.video)}` },
    text.length > 90 ? `${text.slice(0, 89)}…` : text)
}

// ---- the head: who, status, and what the teacher may do -------------------------------------

function renderHead () {
  document.title = `${cycle.focus} · cocoach`
  $('#cycle-focus').textContent = cycle.focus
  $('#cycle-people').textContent = [
    `Teacher: ${nameOf(cycle.teacher)}`,
    `Coach${cycle.coaches.length > 1 ? 'es' : ''}: ${cycle.coaches.map(nameOf).join(', ')}`,
    `Framework: ${cycle.framework_info.name}`,
    `Started ${dateOf(cycle.created)}`,
    `Status: ${CYCLE_STATUS[cycle.status] ?? cycle.status}`
  ].join(' · ')
  document.body.dataset.status = cycle.status
  const teacher = me.id === cycle.teacher
  const tools = []
  if (teacher && cycle.status === 'proposed') tools.push(button('Accept the cycle', 'cycle-accept', () => move('accept')))
  if (teacher && cycle.status === 'active') {
    tools.push(button('Close the cycle', 'cycle-close', () => {
      if (confirm('Close the cycle? Nothing more can be added to it; its report stays yours.')) move('close')
    }))
  }
  tools.push(
    h('a', { class: 'button-link', id: 'cycle-report', href: `${base}/report.html`, target: '_blank', rel: 'noopener', text: 'Printable report' }),
    h('a', { class: 'button-link', href: `${base}/export.json`, download: '', text: 'Export (JSON)' }))
  if (teacher && cycle.status === 'closed') tools.push(shareForm())
  $('#cycle-tools').replaceChildren(...tools)
  $('#session-form').hidden = cycle.status !== 'active'
  const criteria = cycle.success_criteria
  $('#criteria-section').hidden = criteria.length === 0
  $('#criteria').replaceChildren(...criteria.map((c) => h('li', { text: c })))
}

function button (text, id, onclick) {
  return h('button', { type: 'button', id, text, onclick })
}

async function move (step) {
  try {
    await sendJson(`${base}/${step}`, {})
  } catch (error) {
    return problem(error.message)
  }
  load()
}

function shareForm () {
  const select = h('select', { 'aria-label': 'Share the report with' }, h('option', { value: '', text: 'Share the report with…' }))
  json('/api/people?q=').then(({ people }) => {
    select.append(...people.filter((p) => p.id !== me.id).map((p) => h('option', { value: p.id, text: p.name })))
  }).catch((error) => problem(error.message))
  const shared = cycle.shared_with.map(nameOf).join(', ')
  return h('form', {
    class: 'cycle-share',
    onsubmit: async (event) => {
      event.preventDefault()
      if (!select.value) return
      try {
        await sendJson(`${base}/share`, { person: select.value })
      } catch (error) {
        return problem(error.message)
      }
      load()
    }
  }, select, h('button', { type: 'submit', text: 'Share' }),
  shared ? h('span', { class: 'hint', text: ` Shared with ${shared}.` }) : null)
}

// ---- action steps ----------------------------------------------------------------------

function renderActions () {
  $('#actions-empty').hidden = cycle.actions.length > 0
  $('#cycle-actions').replaceChildren(...cycle.actions.map((a) => h('li', { class: `action status-${a.status}`, dataset: { id: a.id } },
    h('p', { class: 'action-text', text: a.text }),
    h('div', { class: 'action-row' },
      h('strong', { class: 'action-status-label', text: STATUS_LABEL[a.status] ?? a.status }),
      h('span', { class: 'action-by', text: `by ${a.author_name || nameOf(a.author)}` })),
    a.evidence.length
      ? h('div', { class: 'action-evidence' }, h('span', { class: 'hint', text: 'Evidence:' }), a.evidence.map(evidenceLink))
      : null)))
  const counts = cycle.progress.actions
  $('#action-counts').textContent = cycle.actions.length
    ? STATUSES.filter(([s]) => counts[s]).map(([s, label]) => `${label}: ${counts[s]}`).join(' · ')
    : ''
}

// ---- sessions ----------------------------------------------------------------------------

function renderSessions () {
  $('#sessions-empty').hidden = cycle.sessions.length > 0
  $('#cycle-sessions').replaceChildren(...cycle.sessions.map((s, i) => h('li', { class: 'cycle-session', dataset: { room: s.room } },
    h('span', { class: 'cycle-session-kind', text: `${KIND[s.kind] ?? s.kind} ${i + 1}` }),
    ` · ${dateOf(s.created)}`,
    s.video ? ` · ${lessonTitle(s.video)}` : '',
    ' ',
    h('a', { class: 'home-open', href: `/rooms/${encodeURIComponent(s.room)}/join` }, 'Open',
      h('span', { class: 'sr-only', text: ` session ${i + 1}` })))))
  const choices = new Map(lessons().map((v) => [v, lessonTitle(v)]))
  for (const v of myVideos) if (!choices.has(v.id) && v.status === 'ready') choices.set(v.id, v.title)
  $('#session-video').replaceChildren(h('option', { value: '', text: 'No lesson (planning, or a live lesson)' }),
    ...[...choices].map(([id, title]) => h('option', { value: id, text: title })))
}

$('#session-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const status = $('#session-status')
  const video = $('#session-video').value || undefined
  $('#session-button').disabled = true
  try {
    const { room } = await sendJson(`${base}/sessions`, { kind: $('#session-kind').value, video })
    status.replaceChildren('The session is ready: ', h('a', { href: `/rooms/${encodeURIComponent(room)}/join`, text: 'open it' }), '.')
    await load()
  } catch (error) {
    status.textContent = `Could not start the session: ${error.message}`
  } finally {
    $('#session-button').disabled = false
  }
})

// ---- progress charts -------------------------------------------------------------------

function lessonLabel (index) {
  const video = cycle.progress.lessons[index].video
  return `${index + 1}. ${lessonTitle(video)}`
}

function renderProgress () {
  const rows = cycle.progress.lessons
  $('#progress-empty').hidden = rows.length > 0
  $('#rates-figure').hidden = rows.length === 0
  const tags = cycle.framework_info.tags
  const rates = rows.flatMap((row, i) => tags.map((tag) => ({
    lesson: i + 1, tag: tag.label, rate: row.tags[tag.id]?.per_10_min, count: row.tags[tag.id]?.count ?? 0
  }))).filter((d) => d.rate !== null && d.rate !== undefined)
  const ticks = rows.map((_, i) => i + 1)
  $('#rates-chart').replaceChildren(Plot.plot({
    width: CHART_WIDTH,
    height: 300,
    marginRight: 20,
    x: { label: 'Lesson', ticks, tickFormat: (i) => String(i), domain: [0.8, Math.max(1, rows.length) + 0.2] },
    y: { label: 'Per 10 minutes', grid: true, zero: true },
    color: { domain: tags.map((t) => t.label), range: tags.map((t) => t.colour), legend: true },
    marks: [
      Plot.lineY(rates, { x: 'lesson', y: 'rate', stroke: 'tag', strokeWidth: 2 }),
      Plot.dot(rates, { x: 'lesson', y: 'rate', fill: 'tag', r: 4, title: (d) => `${d.tag}, lesson ${d.lesson}: ${d.rate} per 10 min (${d.count})` })
    ]
  }))
  renderRubricChart(rows, ticks)
  renderTables(rows)
}

function renderRubricChart (rows, ticks) {
  const criteria = cycle.framework_info.rubric?.criteria ?? []
  const levels = rows.flatMap((row, i) => Object.entries(row.rubric).flatMap(([scorer, byCriterion]) =>
    criteria.filter((c) => byCriterion[c.id] !== undefined).map((c) => ({
      lesson: i + 1, criterion: c.label, scorer: nameOf(scorer), level: byCriterion[c.id]
    }))))
  $('#rubric-figure').hidden = levels.length === 0
  if (!levels.length) return $('#rubric-chart').replaceChildren()
  const top = Math.max(...criteria.flatMap((c) => c.levels.map((l) => l.level)))
  $('#rubric-chart').replaceChildren(Plot.plot({
    width: CHART_WIDTH,
    height: 120 * criteria.length + 40,
    marginLeft: 50,
    marginRight: 160,
    x: { label: 'Lesson', ticks, tickFormat: (i) => String(i), domain: [0.8, Math.max(1, rows.length) + 0.2] },
    y: { label: 'Level', domain: [0, top], ticks: top, grid: true },
    fy: { label: null },
    color: { legend: true },
    marks: [
      Plot.frame({ stroke: '#d9dde5' }),
      Plot.lineY(levels, { x: 'lesson', y: 'level', fy: 'criterion', stroke: 'scorer', z: 'scorer', strokeWidth: 2 }),
      Plot.dot(levels, { x: 'lesson', y: 'level', fy: 'criterion', fill: 'scorer', r: 4, title: (d) => `${d.criterion}, lesson ${d.lesson}: ${d.scorer} scored ${d.level}` })
    ]
  }))
}

/** The charts' figures as tables: what a screen reader reads, and what a printout keeps. */
function renderTables (rows) {
  const tags = cycle.framework_info.tags
  const ratios = cycle.framework_info.ratios
  const head = h('tr', {}, h('th', { text: 'Lesson' }), tags.map((t) => h('th', { text: t.label })), ratios.map((r) => h('th', { text: r.label })))
  const body = rows.map((row, i) => h('tr', {},
    h('td', { text: lessonLabel(i) }),
    tags.map((t) => {
      const cell = row.tags[t.id]
      return h('td', { text: cell.per_10_min === null ? `${cell.count}` : `${cell.count} (${cell.per_10_min} per 10 min)` })
    }),
    ratios.map((r) => h('td', { text: row.ratios[r.id] === null ? '–' : String(row.ratios[r.id]) }))))
  $('#progress-tables').replaceChildren(h('table', { class: 'progress-table' }, h('thead', {}, head), h('tbody', {}, body)))
}

// ---- scores ------------------------------------------------------------------------------

function renderScores () {
  const criteria = cycle.framework_info.rubric?.criteria ?? []
  $('#scores-section').hidden = criteria.length === 0 || lessons().length === 0
  const scorers = [cycle.teacher, ...cycle.coaches]
  const mine = (video, criterion) => cycle.scores.find((s) => s.video === video && s.scorer === me.id && s.criterion === criterion)
  const mayScore = cycle.status === 'active' && scorers.includes(me.id)
  $('#scores').replaceChildren(...lessons().map((video, i) => h('div', { class: 'lesson-scores', dataset: { video } },
    h('h3', { text: `${i + 1}. ${lessonTitle(video)}` }),
    h('table', {},
      h('thead', {}, h('tr', {}, h('th', { text: 'Criterion' }), scorers.map((p) => h('th', { text: nameOf(p) })))),
      h('tbody', {}, criteria.map((c) => h('tr', { dataset: { criterion: c.id } },
        h('th', { scope: 'row', text: c.label }),
        scorers.map((p) => h('td', { class: 'score-cell', dataset: { scorer: p } },
          p === me.id && mayScore ? scoreInput(video, c, mine(video, c.id)) : scoreText(video, c, p)))))))
  )))
}

function scoreText (video, criterion, scorer) {
  const score = cycle.scores.find((s) => s.video === video && s.scorer === scorer && s.criterion === criterion.id)
  if (!score) return h('span', { class: 'hint', text: 'not scored' })
  const level = criterion.levels.find((l) => l.level === score.level)
  return h('span', {},
    h('strong', { class: 'score-level', text: String(score.level) }),
    level ? h('span', { class: 'score-descriptor', text: ` ${level.descriptor}` }) : null,
    score.evidence.length ? h('div', { class: 'action-evidence' }, score.evidence.map(evidenceLink)) : null)
}

function scoreInput (video, criterion, current) {
  const select = h('select', {
    class: 'score-select',
    'aria-label': `Your level for ${criterion.label}`,
    onchange: () => saveScore(video, criterion, select, evidence)
  }, h('option', { value: '', text: 'Your level…' }),
  criterion.levels.map((l) => h('option', { value: String(l.level), selected: current?.level === l.level, text: `${l.level}: ${l.descriptor}` })))
  const evidence = h('select', {
    class: 'score-evidence',
    multiple: true,
    size: 3,
    'aria-label': `Notes that show your level for ${criterion.label}`,
    onchange: () => { if (select.value) saveScore(video, criterion, select, evidence) }
  })
  notesOf(video).then((notes) => {
    evidence.append(...notes.map((n) => h('option', {
      value: n.id,
      selected: current?.evidence.includes(n.id),
      text: `${formatTime(n.start)} ${n.text || n.tags.join(', ')}`.slice(0, 70)
    })))
  })
  return h('div', { class: 'score-input' }, select, evidence, current ? scoreText(video, criterion, me.id) : null)
}

const notesCache = new Map()
function notesOf (video) {
  if (!notesCache.has(video)) {
    notesCache.set(video, json(`${base}/notes?video=${encodeURIComponent(video)}`).then((r) => r.notes).catch(() => []))
  }
  return notesCache.get(video)
}

async function saveScore (video, criterion, select, evidence) {
  const level = Number(select.value)
  if (!level) return
  try {
    await sendJson(`${base}/scores`, {
      video, criterion: criterion.id, level, evidence: [...evidence.selectedOptions].map((o) => o.value)
    }, 'PUT')
  } catch (error) {
    return problem(`The score was not saved: ${error.message}`)
  }
  load()
}

// ---- start -------------------------------------------------------------------------------

async function load () {
  let response
  try {
    response = await api(base)
  } catch (error) {
    if (error.status === 401) return
    $('#cycle-focus').textContent = 'This cycle did not open'
    if (error.status === 403) {
      problem('You may read this closed cycle’s report, which its teacher shared with you.')
      $('#cycle-tools').replaceChildren(h('a', { class: 'button-link', href: `${base}/report.html`, text: 'Read the report' }))
    } else {
      problem(error.status === 404 ? 'This cycle does not exist, or you are not one of its people.' : error.message)
    }
    document.body.dataset.ready = 'true'
    return
  }
  cycle = await response.json()
  notesCache.clear()
  $('#cycle-body').hidden = false
  renderHead()
  renderActions()
  renderSessions()
  renderProgress()
  renderScores()
  document.body.dataset.ready = 'true'
}

async function start () {
  try {
    me = await json('/api/me')
  } catch (error) {
    if (error.status !== 401) problem(error.message)
    return
  }
  myVideos = await json('/api/videos').then((r) => r.videos).catch(() => [])
  await load()
}

start()
