// The clip page at /clips/{clip} (docs/groups.md): a moment of a teacher's practice cut from her
// lesson, with the notes it carried (their times the clip's own). Anyone who may see it watches
// it; its owner shares it with her groups (each share a discussion), withdraws a share,
// publishes it to the trust library with a summary, unpublishes it, or deletes it.
import { api, json, sendJson } from './api.js'
import { STATUS, dateOf, lengthText, tagCounts, tagIndex, watch } from './clipui.js'
import './style.css'
import { $, formatTime, h, preciseTime } from './util.js'

const clipId = decodeURIComponent(location.pathname.split('/')[2] ?? '')
const base = `/api/clips/${encodeURIComponent(clipId)}`
// Opened from a group's page: watching goes through that group's discussion. Someone who sees
// the clip only through a group watches it there too (found in their groups, below).
let via = new URLSearchParams(location.search).get('via') || null
const CONSENT_MISSING = 'The library takes this clip once its lesson’s consent is recorded: obtained from everyone in it, or not needed. Your school records it on the admin page; publish again then.'

let me = null
let clip = null
let tags = new Map()
let refresh = null

function problem (text) {
  const el = $('#clip-problem')
  el.textContent = text
  el.hidden = !text
}

const owning = () => clip.owner === me?.id

// ---- what it is ------------------------------------------------------------------------------

function renderHead () {
  document.title = `${clip.title} · cocoach`
  $('#clip-title').textContent = clip.title
  $('#clip-about').textContent = [
    `By ${clip.owner === me.id ? 'you' : clip.owner_name ?? 'someone'}${clip.org ? `, ${clip.org}` : ''}`,
    lengthText(clip.duration),
    `Cut ${dateOf(clip.created)}`,
    clip.published ? 'In the trust library' : null
  ].filter(Boolean).join(' · ')
  $('#clip-description').textContent = clip.description || ''
  $('#clip-description').hidden = !clip.description
  $('#clip-range').textContent = `From ${preciseTime(clip.start)} to ${preciseTime(clip.end)} of the lesson: only this part can be watched.`
  $('#clip-status').textContent = STATUS[clip.status] ?? clip.status
  $('#clip-status').className = `status-${clip.status}`
  document.body.dataset.status = clip.status
  $('#clip-tags').replaceChildren(tagCounts(clip.tags, tags) ?? '')
  const ready = clip.status === 'ready'
  $('#clip-tools').replaceChildren(h('button', {
    type: 'button',
    id: 'clip-watch',
    disabled: !ready,
    title: ready ? '' : 'It can be watched once it is cut',
    text: via ? 'Open the group’s discussion' : 'Watch',
    onclick: async (event) => {
      event.target.disabled = true
      try {
        await watch(clip.id, via)
      } catch (error) {
        $('#watch-status').textContent = `It did not open: ${error.message}`
        event.target.disabled = false
      }
    }
  }))
}

function renderNotes () {
  $('#notes-empty').hidden = clip.notes.length > 0
  $('#clip-notes').replaceChildren(...clip.notes.map((n) => h('li', { class: 'clip-note', dataset: { id: n.id } },
    h('span', { class: 'clip-note-time', text: n.end != null ? `${formatTime(n.start)}–${formatTime(n.end)}` : formatTime(n.start) }),
    ' ',
    n.tags.map((id) => h('span', { class: 'chip on', style: { '--tag': tags.get(id)?.colour ?? '#6b7280' }, text: tags.get(id)?.label ?? id })),
    ' ',
    h('span', { class: 'clip-note-text', text: n.text || '(no text)' }),
    h('span', { class: 'hint', text: ` · ${n.author_name ?? 'someone'}` }))))
}

// ---- shares (its owner) ----------------------------------------------------------------------

async function renderShares () {
  const shares = clip.shares ?? []
  $('#shares-section').hidden = !owning()
  if (!owning()) return
  $('#shares-empty').hidden = shares.length > 0
  $('#clip-shares').replaceChildren(...shares.map((s) => h('li', { class: 'clip-share', dataset: { group: s.group } },
    h('a', { href: `/g/${encodeURIComponent(s.group)}`, text: s.group_name ?? s.group }),
    h('span', { class: 'hint', text: ` · since ${dateOf(s.created)} ` }),
    h('button', {
      type: 'button',
      class: 'share-open',
      'aria-label': `Open the discussion in ${s.group_name}`,
      text: 'Discussion',
      onclick: () => watch(clip.id, s.group).catch((error) => { $('#share-status').textContent = `It did not open: ${error.message}` })
    }),
    ' ',
    h('button', {
      type: 'button',
      class: 'share-withdraw',
      'aria-label': `Withdraw the clip from ${s.group_name}`,
      text: 'Withdraw',
      onclick: async () => {
        if (!confirm(`Withdraw the clip from “${s.group_name}”? Its members lose it, and anyone watching it there is cut off.`)) return
        try {
          await api(`${base}/shares/${encodeURIComponent(s.group)}`, { method: 'DELETE' })
          $('#share-status').textContent = `Withdrawn from ${s.group_name}.`
        } catch (error) {
          $('#share-status').textContent = `It was not withdrawn: ${error.message}`
        }
        load()
      }
    }))))
  let groups
  try {
    groups = (await json('/api/groups')).groups
  } catch (error) {
    $('#share-status').textContent = `Your groups did not load: ${error.message}`
    return
  }
  const shared = new Set(shares.map((s) => s.group))
  const open = groups.filter((g) => !shared.has(g.id))
  const chosen = $('#share-group').value
  $('#share-group').replaceChildren(
    h('option', { value: '', text: open.length ? 'Choose a group…' : groups.length ? 'Shared with all your groups' : 'You are in no group yet' }),
    ...open.map((g) => h('option', { value: g.id, text: g.name })))
  if (open.some((g) => g.id === chosen)) $('#share-group').value = chosen
  else if (open.length === 1) $('#share-group').value = open[0].id
  $('#share-form').hidden = !open.length
}

$('#share-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const select = $('#share-group')
  if (!select.value) return
  const name = select.selectedOptions[0]?.textContent ?? ''
  $('#share-button').disabled = true
  try {
    await sendJson(`${base}/shares`, { group: select.value })
    $('#share-status').textContent = `Shared with ${name}: its members can discuss it now.`
  } catch (error) {
    $('#share-status').textContent = `It was not shared: ${error.message}`
  } finally {
    $('#share-button').disabled = false
  }
  load()
})

// ---- the library (its owner) -----------------------------------------------------------------

function renderPublish () {
  $('#publish-section').hidden = !owning()
  if (!owning()) return
  const published = clip.published
  $('#published').hidden = !published
  $('#publish-form').hidden = Boolean(published)
  if (published) {
    $('#published-text').textContent = `Published ${dateOf(published.at)}${published.summary ? `: ${published.summary}` : '.'}`
  }
}

$('#publish-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const status = $('#publish-status')
  $('#publish-button').disabled = true
  try {
    const summary = $('#publish-summary').value.trim()
    await sendJson('/api/library', summary ? { clip: clip.id, summary } : { clip: clip.id })
    status.textContent = 'Published: everyone of the trust can find it in the library.'
  } catch (error) {
    status.textContent = error.code === 'consent_missing' ? CONSENT_MISSING : `It was not published: ${error.message}`
  } finally {
    $('#publish-button').disabled = false
  }
  load()
})

$('#unpublish-button').addEventListener('click', async () => {
  const status = $('#publish-status')
  try {
    await api(`/api/library/${encodeURIComponent(clip.id)}`, { method: 'DELETE' })
    status.textContent = 'Unpublished: it is no longer in the library.'
  } catch (error) {
    status.textContent = `It is still published: ${error.message}`
  }
  load()
})

$('#delete-button').addEventListener('click', async () => {
  if (!confirm(`Delete the clip “${clip.title}”? Its shares, discussions and library entry go with it.`)) return
  try {
    await api(base, { method: 'DELETE' })
  } catch (error) {
    $('#delete-status').textContent = `It was not deleted: ${error.message}`
    return
  }
  location.assign('/')
})

/** One of my groups the clip is shared with: the way I may watch it. */
async function groupOf (id) {
  try {
    const { groups } = await json('/api/groups')
    return groups.find((g) => g.clips.some((c) => c.clip === id))?.id ?? null
  } catch {
    return null
  }
}

// ---- start -----------------------------------------------------------------------------------

async function load () {
  try {
    clip = await json(base)
  } catch (error) {
    if (error.status === 401) return
    $('#clip-title').textContent = 'This clip did not open'
    $('#clip-body').hidden = true
    problem(error.status === 404 || error.status === 403
      ? 'This clip does not exist (any more), or it is not shared with you.'
      : error.message)
    document.body.dataset.ready = 'true'
    return
  }
  $('#clip-body').hidden = false
  if (!via && !owning() && !clip.published) via = await groupOf(clip.id)
  renderHead()
  renderNotes()
  renderPublish()
  $('#delete-section').hidden = !owning()
  await renderShares()
  clearTimeout(refresh)
  if (clip.status === 'queued' || clip.status === 'ingesting') refresh = setTimeout(load, 2000)
  document.body.dataset.ready = 'true'
}

async function start () {
  try {
    me = await json('/api/me')
  } catch (error) {
    if (error.status !== 401) problem(error.message)
    return
  }
  tags = tagIndex(await json('/api/frameworks').then((r) => r.frameworks).catch(() => []))
  await load()
}

start()
