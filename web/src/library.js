// The trust library at /library (docs/groups.md): published clips of the trust, found by words
// (searched as one types, 250 ms after the last key) and narrowed by tags (chips from the
// frameworks: a clip must carry every tag pressed). Each result: its title, owner, length, tag
// counts and summary, and Watch (a viewing room of one's own).
import { json } from './api.js'
import { lengthText, tagCounts, tagIndex, watch } from './clipui.js'
import './style.css'
import { $, h } from './util.js'

const SEARCH_DELAY_MS = 250
const LIMIT = 50

let tags = new Map()
const chosen = new Set() // tag ids pressed
let timer = null
let seq = 0

function problem (text) {
  const el = $('#library-problem')
  el.textContent = text
  el.hidden = !text
}

function renderChips (frameworks) {
  $('#library-tags').replaceChildren(...frameworks.filter((f) => f.tags?.length).map((f) => h('div', { class: 'library-framework' },
    h('span', { class: 'library-framework-name', id: `fw-${f.id}`, text: f.name }),
    h('span', { class: 'tag-buttons', role: 'group', 'aria-labelledby': `fw-${f.id}` }, f.tags.map((t) => h('button', {
      type: 'button',
      class: 'chip library-chip',
      style: { '--tag': t.colour },
      dataset: { tag: t.id },
      'aria-pressed': 'false',
      title: `Only clips with notes tagged “${t.label}”`,
      text: t.label,
      onclick: () => {
        if (chosen.has(t.id)) chosen.delete(t.id)
        else chosen.add(t.id)
        for (const chip of document.querySelectorAll('.library-chip')) {
          const on = chosen.has(chip.dataset.tag)
          chip.setAttribute('aria-pressed', String(on))
          chip.classList.toggle('on', on)
        }
        search()
      }
    }))))))
}

async function search () {
  const mine = ++seq
  const q = $('#library-q').value.trim()
  const params = new URLSearchParams()
  if (q) params.set('q', q)
  for (const tag of chosen) params.append('tag', tag)
  params.set('limit', String(LIMIT))
  let entries
  try {
    entries = (await json(`/api/library?${params}`)).entries
  } catch (error) {
    if (mine !== seq || error.status === 401) return
    $('#library-count').textContent = ''
    problem(`The library did not answer: ${error.message}`)
    return
  }
  if (mine !== seq) return // a newer search is under way
  problem('')
  const filtered = q || chosen.size
  $('#library-count').textContent = entries.length
    ? `${entries.length === LIMIT ? `The first ${LIMIT}` : entries.length} ${entries.length === 1 ? 'clip' : 'clips'}${filtered ? ' found' : ', newest first'}`
    : filtered ? 'No clip matches: try fewer words or tags.' : 'Nothing published yet.'
  $('#library-results').replaceChildren(...entries.map(entry))
  document.body.dataset.results = String(entries.length)
}

function entry (e) {
  const notes = Array.isArray(e.notes) ? e.notes.length : Number(e.notes ?? 0) // a list, or its count
  const status = h('p', { class: 'error', role: 'status', 'aria-live': 'polite' })
  return h('li', { class: 'library-entry', dataset: { clip: e.clip } },
    h('h3', {}, h('a', { href: `/clips/${encodeURIComponent(e.clip)}`, text: e.title })),
    h('p', { class: 'hint library-by', text: [`${e.owner_name ?? 'Someone'}${e.org ? `, ${e.org}` : ''}`, lengthText(e.duration), `${notes} ${notes === 1 ? 'note' : 'notes'}`].join(' · ') }),
    tagCounts(e.tags, tags),
    e.summary ? h('p', { class: 'library-summary', text: e.summary }) : null,
    e.description && e.description !== e.summary ? h('p', { class: 'hint library-description', text: e.description }) : null,
    h('button', {
      type: 'button',
      class: 'library-watch',
      'aria-label': `Watch “${e.title}”`,
      onclick: async (event) => {
        event.target.disabled = true
        try {
          await watch(e.clip)
        } catch (error) {
          status.textContent = `It did not open: ${error.message}`
          event.target.disabled = false
        }
      }
    }, 'Watch'),
    status)
}

$('#library-q').addEventListener('input', () => {
  clearTimeout(timer)
  timer = setTimeout(search, SEARCH_DELAY_MS)
})
$('#library-form').addEventListener('submit', (event) => {
  event.preventDefault()
  clearTimeout(timer)
  search()
})

async function start () {
  try {
    const { frameworks } = await json('/api/frameworks')
    tags = tagIndex(frameworks)
    renderChips(frameworks)
  } catch (error) {
    if (error.status === 401) return
    problem(`The tags did not load: ${error.message}`)
  }
  await search()
  document.body.dataset.ready = 'true'
}

start()
