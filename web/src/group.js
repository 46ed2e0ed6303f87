// The group page at /g/{group} (docs/groups.md): a Film Club (or a trust-wide hotspot group),
// its people, and the clips shared with it, each with its discussion. A facilitator adds and
// removes people and starts a group session on a clip (the members watch it in sync, the
// facilitator at the controls); a member may leave.
import { api, json, sendJson } from './api.js'
import { dateOf, lengthText, watch } from './clipui.js'
import './style.css'
import { $, h } from './util.js'

const SEARCH_DELAY_MS = 250
const KIND = { film_club: 'Film Club', hotspot: 'Hotspot group' }

const groupId = decodeURIComponent(location.pathname.split('/')[2] ?? '')
const base = `/api/groups/${encodeURIComponent(groupId)}`
let me = null
let group = null
let facilitating = false

function problem (text) {
  const el = $('#group-problem')
  el.textContent = text
  el.hidden = !text
}

/** Everyone of the group once, facilitators first, each with their part. */
function people () {
  const facilitators = new Set(group.facilitators.map((p) => p.id))
  const all = new Map()
  for (const p of [...group.facilitators, ...group.members]) if (!all.has(p.id)) all.set(p.id, p)
  return [...all.values()].map((p) => ({ ...p, facilitator: facilitators.has(p.id) }))
}

// ---- the head ------------------------------------------------------------------------------

function renderHead () {
  document.title = `${group.name} · cocoach`
  $('#group-name').textContent = group.name
  $('#group-kind').textContent = KIND[group.kind] ?? group.kind
  const everyone = people()
  $('#group-about').textContent = [
    KIND[group.kind] ?? group.kind,
    `${everyone.length} ${everyone.length === 1 ? 'person' : 'people'}`,
    `Facilitated by ${group.facilitators.map((p) => (p.id === me.id ? `${p.name} (you)` : p.name)).join(', ') || 'nobody'}`,
    `Started ${dateOf(group.created)}`
  ].join(' · ')
  const leave = h('button', {
    type: 'button',
    id: 'group-leave',
    text: 'Leave the group',
    onclick: async () => {
      if (!confirm(`Leave “${group.name}”? Its clips and discussions will be closed to you.`)) return
      try {
        await api(`${base}/members/${encodeURIComponent(me.id)}`, { method: 'DELETE' })
      } catch (error) {
        return problem(`You did not leave the group: ${error.message}`)
      }
      location.assign('/')
    }
  })
  $('#group-tools').replaceChildren(leave)
}

const timeOf = (seconds) => new Date(seconds * 1000).toLocaleTimeString(undefined, { timeStyle: 'short' })

// ---- shared clips ---------------------------------------------------------------------------

function renderClips () {
  $('#clips-empty').hidden = group.clips.length > 0
  $('#group-clips').replaceChildren(...group.clips.map((c) => {
    const session = h('p', { class: 'group-session', role: 'status', 'aria-live': 'polite' })
    const start = facilitating
      ? h('button', {
        type: 'button',
        class: 'group-start',
        'aria-label': `Start a group session on “${c.title}”`,
        onclick: async (event) => {
          event.target.disabled = true
          try {
            const { room } = await sendJson(`${base}/sessions`, { clip: c.clip })
            const address = `${location.origin}/r/${encodeURIComponent(room)}`
            session.replaceChildren(
              'The group session is open. ',
              h('a', { class: 'home-open group-join', href: `/r/${encodeURIComponent(room)}`, text: 'Join it' }),
              ' Members join at ',
              h('input', { type: 'text', readonly: true, value: address, class: 'group-address', 'aria-label': 'The group session’s address, to send the members', onfocus: (e) => e.target.select() }))
          } catch (error) {
            session.textContent = `The group session did not start: ${error.message}`
          } finally {
            event.target.disabled = false
          }
        }
      }, 'Start a group session')
      : null
    // Group sessions of this clip, newest first: any member joins from here.
    const sessions = (group.sessions ?? []).filter((g) => g.clip === c.clip).slice(0, 3)
    const joins = sessions.length
      ? h('p', { class: 'group-sessions' }, 'Group sessions: ', sessions.map((g, i) => [
        i ? ', ' : '',
        h('a', { class: 'group-session-join', href: `/r/${encodeURIComponent(g.room)}`, text: `${dateOf(g.created)} ${timeOf(g.created)}` })
      ]))
      : null
    return h('li', { class: 'group-clip', dataset: { clip: c.clip } },
      h('div', { class: 'group-clip-head' },
        h('a', { class: 'group-clip-title', href: `/clips/${encodeURIComponent(c.clip)}?via=${encodeURIComponent(group.id)}`, text: c.title }),
        h('span', { class: 'hint', text: ` · ${lengthText(c.duration)} · by ${c.owner_name ?? 'someone'} · shared ${dateOf(c.created)}` })),
      h('div', { class: 'group-clip-tools' },
        h('button', {
          type: 'button',
          class: 'group-open',
          'aria-label': `Open the discussion of “${c.title}”`,
          onclick: async (event) => {
            event.target.disabled = true
            try {
              await watch(c.clip, group.id)
            } catch (error) {
              $('#clips-status').textContent = `“${c.title}” did not open: ${error.message}`
              event.target.disabled = false
            }
          }
        }, 'Open'),
        start),
      joins,
      session)
  }))
}

// ---- people ---------------------------------------------------------------------------------

function renderPeople () {
  $('#group-people').replaceChildren(...people().map((p) => {
    const mine = p.id === me.id
    const remove = facilitating && !mine
      ? h('button', {
        type: 'button',
        class: 'group-remove',
        text: 'Remove',
        'aria-label': `Remove ${p.name} from the group`,
        onclick: async () => {
          if (!confirm(`Remove ${p.name} from “${group.name}”? Its clips and rooms close to them at once.`)) return
          try {
            await api(`${base}/members/${encodeURIComponent(p.id)}`, { method: 'DELETE' })
            $('#people-status').textContent = `${p.name} is no longer in the group.`
          } catch (error) {
            $('#people-status').textContent = `${p.name} was not removed: ${error.message}`
          }
          load()
        }
      })
      : null
    return h('tr', { class: 'group-person', dataset: { person: p.id } },
      h('td', { text: mine ? `${p.name} (you)` : p.name }),
      h('td', { text: p.org ?? '' }),
      h('td', { text: p.facilitator ? 'facilitator' : 'member' }),
      h('td', {}, remove))
  }))
  $('#add-form').hidden = !facilitating
}

let searchTimer = null
let searchSeq = 0

async function search () {
  const query = $('#add-search').value.trim()
  const seq = ++searchSeq
  let found
  try {
    found = (await json(`/api/people?q=${encodeURIComponent(query)}`)).people
  } catch (error) {
    $('#people-status').textContent = `Could not search: ${error.message}`
    return
  }
  if (seq !== searchSeq) return
  const inGroup = new Set(people().map((p) => p.id))
  const others = found.filter((p) => !inGroup.has(p.id))
  const select = $('#add-person')
  select.replaceChildren(h('option', {
    value: '',
    text: others.length
      ? `${others.length} found: choose one`
      : query ? `Nobody of your trust called “${query}” is outside the group` : 'Type a name to find them'
  }), ...others.map((p) => h('option', { value: p.id, text: p.org ? `${p.name} (${p.org})` : p.name })))
  if (query && others.length) select.value = others[0].id
}

$('#add-search').addEventListener('input', () => {
  clearTimeout(searchTimer)
  searchTimer = setTimeout(search, SEARCH_DELAY_MS)
})

$('#add-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const select = $('#add-person')
  const status = $('#people-status')
  if (!select.value) {
    status.textContent = 'Choose who joins: type their name to find them.'
    return
  }
  const name = select.selectedOptions[0]?.textContent ?? ''
  $('#add-button').disabled = true
  try {
    await sendJson(`${base}/members`, { person: select.value })
    status.textContent = `${name} is in the group now.`
    $('#add-search').value = ''
    select.replaceChildren(h('option', { value: '', text: 'Type a name to find them' }))
  } catch (error) {
    status.textContent = `${name} was not added: ${error.message}`
  } finally {
    $('#add-button').disabled = false
  }
  load()
})

// ---- start ----------------------------------------------------------------------------------

async function load () {
  try {
    group = await json(base)
  } catch (error) {
    if (error.status === 401) return
    $('#group-name').textContent = 'This group did not open'
    problem(error.status === 404 || error.status === 403
      ? 'This group does not exist, or you are not one of its people. Your groups are on your home page.'
      : error.message)
    $('#group-body').hidden = true
    document.body.dataset.ready = 'true'
    return
  }
  facilitating = group.facilitators.some((p) => p.id === me.id)
  document.body.dataset.facilitator = String(facilitating)
  $('#group-body').hidden = false
  renderHead()
  renderClips()
  renderPeople()
  document.body.dataset.ready = 'true'
}

async function start () {
  try {
    me = await json('/api/me')
  } catch (error) {
    if (error.status !== 401) problem(error.message)
    return
  }
  await load()
}

start()
