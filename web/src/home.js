// The home page at / for a signed-in person (docs/web.md, docs/people.md): who they are, their
// own sessions (each opened with one click, through /rooms/{room}/join, without a token in any
// address), a new session with a colleague, their own videos (uploaded with tus and a progress
// bar, with consent and retention), their coaching cycles, their clips, their Film Club groups
// (a coach or leader starts one) and the trust library's latest clips (docs/groups.md). The
// session cookie is HttpOnly: the page never sees it, same-origin requests carry it.
import './style.css'
import { json, sendJson, api } from './api.js'
import { STATUS as CLIP_STATUS, lengthText } from './clipui.js'
import { progressText, statusText, tusUpload } from './upload.js'
import { $, formatTime, h } from './util.js'

const SEARCH_DELAY_MS = 250
const CONSENT = {
  obtained: 'Obtained',
  not_needed: 'Not needed',
  not_obtained: 'Not recorded: not shown in sessions until your school records it'
}

let me = null

function problem (error) {
  const status = $('#home-status')
  status.textContent = `The server did not answer as expected: ${error.message}`
  status.hidden = false
}

// ---- who I am ---------------------------------------------------------------------------

async function loadMe () {
  me = await json('/api/me')
  document.body.dataset.person = me.id
  $('#me').replaceChildren(
    h('strong', { class: 'home-name', text: me.name }),
    h('span', { class: 'home-org', text: me.org ? `, ${me.org}` : '' }),
    h('span', { class: 'home-roles', text: ` · ${me.roles.join(', ')}` }))
  const coach = me.roles.includes('coach')
  const asCoach = $('#new-as option[value="coach"]')
  asCoach.disabled = !coach
  asCoach.textContent = coach ? 'Coach' : 'Coach (your school has not made you a coach)'
  $('#new-as').value = coach ? 'coach' : 'teacher'
  $('#group-new').hidden = !(coach || me.roles.includes('leader'))
}

// ---- my sessions ------------------------------------------------------------------------

function withText (room) {
  const others = room.people.map((p) => `${p.name} (${p.role})`).join(', ') || 'nobody else yet'
  return room.role ? `${others} · you: ${room.role}` : others
}

async function loadSessions () {
  const { rooms } = await json('/api/me/rooms')
  $('#sessions-empty').hidden = rooms.length > 0
  $('#sessions-table').hidden = rooms.length === 0
  $('#sessions').replaceChildren(...rooms.map((room) => h('tr', { class: 'home-session', dataset: { room: room.id } },
    h('td', { class: 'home-title', text: room.title }),
    h('td', {}, h('time', {
      datetime: new Date(room.created * 1000).toISOString(),
      text: new Date(room.created * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })
    })),
    h('td', { class: 'home-with', text: withText(room) }),
    h('td', {}, h('a', { class: 'home-open', href: `/rooms/${encodeURIComponent(room.id)}/join` },
      'Open', h('span', { class: 'sr-only', text: ` ${room.title}` }))))))
}

// ---- a new session ----------------------------------------------------------------------

let searchTimer = null
let searchSeq = 0

async function search () {
  const query = $('#new-search').value.trim()
  const seq = ++searchSeq
  let people
  try {
    people = (await json(`/api/people?q=${encodeURIComponent(query)}`)).people
  } catch (error) {
    $('#new-status').textContent = `Could not search: ${error.message}`
    return
  }
  if (seq !== searchSeq) return // a newer search is under way
  const others = people.filter((p) => p.id !== me?.id)
  const select = $('#new-with')
  const chosen = select.value
  const first = others.length
    ? (query ? `${others.length} found: choose one` : 'Choose a colleague…')
    : (query ? `Nobody of your trust is called “${query}”` : 'Nobody else of your trust has signed in yet')
  select.replaceChildren(h('option', { value: '', text: first }),
    ...others.map((p) => h('option', { value: p.id, text: p.org ? `${p.name} (${p.org})` : p.name })))
  if (others.some((p) => p.id === chosen)) select.value = chosen
  else if (query && others.length) select.value = others[0].id
}

$('#new-search').addEventListener('input', () => {
  clearTimeout(searchTimer)
  searchTimer = setTimeout(search, SEARCH_DELAY_MS)
})

$('#new-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const status = $('#new-status')
  const title = $('#new-title').value.trim()
  const other = $('#new-with')
  if (!other.value) {
    status.textContent = 'Choose who the session is with: type their name to find them.'
    other.focus()
    return
  }
  const name = other.selectedOptions[0]?.textContent ?? ''
  $('#new-button').disabled = true
  try {
    const room = await sendJson('/api/rooms', { title, with: other.value, as: $('#new-as').value })
    status.textContent = `Started “${room.title}” with ${name}. It is at the top of your sessions.`
    $('#new-title').value = ''
    await loadSessions()
  } catch (error) {
    status.textContent = `Could not start the session: ${error.message}`
  } finally {
    $('#new-button').disabled = false
  }
})

// ---- coaching cycles -------------------------------------------------------------------

const CYCLE_STATUS = { proposed: 'Proposed: waits for the teacher', active: 'Active', closed: 'Closed' }

async function loadCycles () {
  const { cycles } = await json('/api/cycles')
  $('#cycles-empty').hidden = cycles.length > 0
  $('#cycles-table').hidden = cycles.length === 0
  $('#cycles').replaceChildren(...cycles.map((c) => {
    const mine = c.teacher === me.id
    const accept = mine && c.status === 'proposed'
      ? h('button', {
        type: 'button',
        text: 'Accept',
        'aria-label': `Accept the cycle “${c.focus}”`,
        onclick: async () => {
          try {
            await sendJson(`/api/cycles/${encodeURIComponent(c.id)}/accept`, {})
          } catch (error) { problem(error) }
          loadCycles()
        }
      })
      : null
    return h('tr', { class: 'home-cycle', dataset: { cycle: c.id } },
      h('td', { class: 'home-title', text: c.focus }),
      h('td', { text: CYCLE_STATUS[c.status] ?? c.status }),
      h('td', { text: mine ? 'teacher' : 'coach' }),
      h('td', { text: String(c.sessions.length) }),
      h('td', {}, accept, ' ', h('a', { class: 'home-open', href: `/c/${encodeURIComponent(c.id)}` },
        'Open', h('span', { class: 'sr-only', text: ` ${c.focus}` }))))
  }))
}

async function loadFrameworks () {
  const { frameworks } = await json('/api/frameworks')
  $('#cycle-framework').replaceChildren(...frameworks.map((f) => h('option', { value: f.id, text: f.name })))
}

let cycleTimer = null

async function searchCycleColleague () {
  const query = $('#cycle-search').value.trim()
  let people
  try {
    people = (await json(`/api/people?q=${encodeURIComponent(query)}`)).people
  } catch (error) {
    $('#cycle-status').textContent = `Could not search: ${error.message}`
    return
  }
  const wanted = $('#cycle-as').value === 'teacher' ? 'coach' : 'teacher'
  const others = people.filter((p) => p.id !== me?.id && (wanted !== 'coach' || p.roles.includes('coach')))
  $('#cycle-with').replaceChildren(
    h('option', { value: '', text: others.length ? `Choose a ${wanted}…` : `Nobody found who can be the ${wanted}` }),
    ...others.map((p) => h('option', { value: p.id, text: p.org ? `${p.name} (${p.org})` : p.name })))
  if (query && others.length) $('#cycle-with').value = others[0].id
}

$('#cycle-search').addEventListener('input', () => {
  clearTimeout(cycleTimer)
  cycleTimer = setTimeout(searchCycleColleague, SEARCH_DELAY_MS)
})
$('#cycle-as').addEventListener('change', () => {
  $('#cycle-with-label').textContent = $('#cycle-as').value === 'teacher' ? 'Coach' : 'Teacher'
  searchCycleColleague()
})

$('#cycle-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const status = $('#cycle-status')
  const other = $('#cycle-with').value
  if (!other) {
    status.textContent = 'Choose who works on the cycle with you: type their name to find them.'
    return
  }
  const asTeacher = $('#cycle-as').value === 'teacher'
  const body = {
    focus: $('#cycle-focus').value.trim(),
    framework: $('#cycle-framework').value,
    success_criteria: $('#cycle-criteria').value.split('\n').map((l) => l.trim()).filter(Boolean),
    ...(asTeacher ? { coaches: [other] } : { teacher: other })
  }
  $('#cycle-button').disabled = true
  try {
    const cycle = await sendJson('/api/cycles', body)
    status.textContent = asTeacher
      ? 'Your cycle has started. Open it to plan the first session.'
      : 'The cycle is proposed: it starts when the teacher accepts it.'
    $('#cycle-form').reset()
    await loadCycles()
    return cycle
  } catch (error) {
    status.textContent = `Could not start the cycle: ${error.message}`
  } finally {
    $('#cycle-button').disabled = false
  }
})

// ---- my videos --------------------------------------------------------------------------

let refresh = null

function keptUntil (v) {
  if (v.expires_at == null) return 'until deleted'
  return new Date(v.expires_at * 1000).toLocaleDateString(undefined, { dateStyle: 'medium' })
}

async function loadVideos () {
  let videos
  try {
    videos = (await json('/api/videos')).videos
  } catch (error) {
    $('#videos-table').hidden = false
    $('#videos').replaceChildren(h('tr', {}, h('td', { colspan: 6, class: 'error', text: error.message })))
    return
  }
  $('#videos-empty').hidden = videos.length > 0
  $('#videos-table').hidden = videos.length === 0
  $('#videos').replaceChildren(...videos.map((v) => h('tr', { dataset: { video: v.id } },
    h('td', { text: v.title }),
    h('td', { class: `status-${v.status}` }, statusText(v),
      v.status === 'ingesting' || v.status === 'uploading'
        ? h('progress', { max: 1, value: v.status === 'uploading' ? v.upload_offset / Math.max(1, v.upload_length) : v.progress })
        : null),
    h('td', { text: v.duration ? formatTime(v.duration) : '–' }),
    h('td', { class: `home-consent consent-${v.consent}`, text: CONSENT[v.consent] ?? v.consent }),
    h('td', { text: keptUntil(v) }),
    h('td', {}, h('button', {
      type: 'button',
      text: 'Delete',
      'aria-label': `Delete ${v.title}`,
      onclick: async () => {
        if (!confirm(`Delete “${v.title}” and its files? Sessions showing it will have no video.`)) return
        try {
          await api(`/api/videos/${encodeURIComponent(v.id)}`, { method: 'DELETE' })
        } catch (error) {
          problem(error)
        }
        loadVideos()
      }
    })))))
  clearTimeout(refresh)
  if (videos.some((v) => v.status === 'queued' || v.status === 'ingesting')) refresh = setTimeout(loadVideos, 2000)
}

$('#upload-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const file = $('#upload-file').files[0]
  if (!file) return
  const button = $('#upload-button')
  const bar = $('#upload-bar')
  const text = $('#upload-text')
  button.disabled = true
  $('#upload-progress').hidden = false
  try {
    await tusUpload(file, {
      title: $('#upload-title').value.trim(),
      consent: $('#upload-consent').value,
      onProgress: (sent) => {
        bar.value = file.size ? sent / file.size : 1
        text.textContent = progressText(file, sent)
      },
      onRetry: (error) => { text.textContent = `The upload was interrupted (${error.message}); resuming…` }
    })
    bar.value = 1
    text.textContent = `Uploaded ${file.name}. The server is preparing it for watching; its status shows below.`
    $('#upload-form').reset()
  } catch (error) {
    text.textContent = `The upload failed: ${error.message}`
  } finally {
    button.disabled = false
    loadVideos()
  }
})

// ---- my clips, my groups, the trust library (docs/groups.md) ------------------------------

async function loadClips () {
  const { clips } = await json('/api/clips')
  $('#clips-empty').hidden = clips.length > 0
  $('#clips-table').hidden = clips.length === 0
  $('#clips').replaceChildren(...clips.map((c) => h('tr', { class: 'home-clip', dataset: { clip: c.id } },
    h('td', {}, h('a', { class: 'home-clip-title', href: `/clips/${encodeURIComponent(c.id)}`, text: c.title })),
    h('td', { text: formatTime(c.duration) }),
    h('td', { class: `status-${c.status}`, text: CLIP_STATUS[c.status] ?? c.status }),
    h('td', { text: (c.shares ?? []).map((s) => s.group_name).join(', ') || 'nobody' }),
    h('td', { text: c.published ? 'published' : '–' }))))
}

const GROUP_KIND = { film_club: 'Film Club', hotspot: 'Hotspot group' }

async function loadGroups () {
  const { groups } = await json('/api/groups')
  $('#groups-empty').hidden = groups.length > 0
  $('#groups').replaceChildren(...groups.map((g) => {
    const people = new Set([...g.members, ...g.facilitators].map((p) => p.id)).size
    const facilitating = g.facilitators.some((p) => p.id === me.id)
    return h('li', { class: 'home-group', dataset: { group: g.id } },
      h('a', { class: 'home-group-name', href: `/g/${encodeURIComponent(g.id)}`, text: g.name }),
      h('span', {
        class: 'hint',
        text: ` · ${GROUP_KIND[g.kind] ?? g.kind} · ${people} people · ${g.clips.length} ${g.clips.length === 1 ? 'clip' : 'clips'}${facilitating ? ' · you facilitate it' : ''}`
      }))
  }))
}

async function loadLibrary () {
  const { entries } = await json('/api/library?limit=5')
  $('#library-empty').hidden = entries.length > 0
  $('#library-latest').replaceChildren(...entries.map((e) => h('li', { class: 'home-entry', dataset: { clip: e.clip } },
    h('a', { href: `/clips/${encodeURIComponent(e.clip)}`, text: e.title }),
    h('span', { class: 'hint', text: ` · ${e.owner_name ?? 'someone'}${e.org ? `, ${e.org}` : ''} · ${lengthText(e.duration)}` }),
    e.summary ? h('p', { class: 'home-entry-summary', text: e.summary }) : null)))
}

/** The new group's members, chosen one by one: id -> label. */
const groupMembers = new Map()
let groupTimer = null
let groupSeq = 0

function renderGroupMembers () {
  $('#group-none').hidden = groupMembers.size > 0
  $('#group-chosen').replaceChildren(...[...groupMembers].map(([id, label]) => h('li', { dataset: { person: id } },
    label, ' ',
    h('button', {
      type: 'button',
      text: 'Remove',
      'aria-label': `Remove ${label} from the new group`,
      onclick: () => { groupMembers.delete(id); renderGroupMembers() }
    }))))
}

async function searchGroupMember () {
  const query = $('#group-search').value.trim()
  const seq = ++groupSeq
  let people
  try {
    people = (await json(`/api/people?q=${encodeURIComponent(query)}`)).people
  } catch (error) {
    $('#group-status').textContent = `Could not search: ${error.message}`
    return
  }
  if (seq !== groupSeq) return
  const others = people.filter((p) => p.id !== me?.id && !groupMembers.has(p.id))
  const select = $('#group-person')
  select.replaceChildren(h('option', {
    value: '',
    text: others.length ? `${others.length} found: choose one` : query ? `Nobody of your trust is called “${query}”` : 'Type a name to find them'
  }), ...others.map((p) => h('option', { value: p.id, text: p.org ? `${p.name} (${p.org})` : p.name })))
  if (query && others.length) select.value = others[0].id
}

$('#group-search').addEventListener('input', () => {
  clearTimeout(groupTimer)
  groupTimer = setTimeout(searchGroupMember, SEARCH_DELAY_MS)
})

$('#group-add').addEventListener('click', () => {
  const select = $('#group-person')
  if (!select.value) {
    $('#group-status').textContent = 'Type a colleague’s name to find them, then add them.'
    return
  }
  groupMembers.set(select.value, select.selectedOptions[0].textContent)
  $('#group-status').textContent = `${select.selectedOptions[0].textContent} will be in the group.`
  $('#group-search').value = ''
  select.replaceChildren(h('option', { value: '', text: 'Type a name to find them' }))
  renderGroupMembers()
  $('#group-search').focus()
})

$('#group-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const status = $('#group-status')
  if (!groupMembers.size) {
    status.textContent = 'Add at least one colleague: type their name to find them.'
    return
  }
  $('#group-button').disabled = true
  try {
    const group = await sendJson('/api/groups', {
      name: $('#group-name').value.trim(),
      kind: $('#group-kind').value,
      members: [...groupMembers.keys()],
      facilitators: [me.id]
    })
    status.replaceChildren(`“${group.name}” has started. `, h('a', { href: `/g/${encodeURIComponent(group.id)}`, text: 'Open it' }), '.')
    $('#group-form').reset()
    groupMembers.clear()
    renderGroupMembers()
    await loadGroups()
  } catch (error) {
    status.textContent = `The group did not start: ${error.message}`
  } finally {
    $('#group-button').disabled = false
  }
})

// ---- start ------------------------------------------------------------------------------

async function start () {
  try {
    await loadMe()
  } catch (error) {
    if (error.status !== 401) problem(error)
    return
  }
  await Promise.all([
    loadSessions().catch(problem),
    loadCycles().catch(problem),
    loadFrameworks().catch(problem),
    loadClips().catch(problem),
    loadGroups().catch(problem),
    loadLibrary().catch(problem),
    searchCycleColleague(),
    loadVideos(),
    search()
  ])
  document.body.dataset.ready = 'true'
}

start()
