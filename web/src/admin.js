// The admin page at /admin: upload lessons (tus, with a progress bar), see the library,
// create rooms and hand out invite links per role. The admin key stays in this tab
// (sessionStorage) and goes to the server as Authorization: Bearer.
import './style.css'
import { progressText, statusText, tusUpload } from './upload.js'
import { $, errorOf, formatTime, h } from './util.js'

const KEY = 'cocoach-admin-key'

let adminKey = sessionStorage.getItem(KEY) ?? ''
let videos = []

async function api (path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${adminKey}`, ...(options.headers ?? {}) }
  })
  if (!response.ok) {
    const { message } = await errorOf(response)
    const error = new Error(message || `${response.status} ${response.statusText}`)
    error.status = response.status
    throw error
  }
  return response
}

const json = async (path, options) => (await api(path, options)).json()

// ---- the key ------------------------------------------------------------------------------

async function useKey (key) {
  adminKey = key
  try {
    await api('/api/rooms')
  } catch (error) {
    $('#key-status').textContent = error.status === 401 ? 'That key is not this server’s admin key.' : `The server did not answer: ${error.message}`
    $('#work').hidden = true
    return
  }
  sessionStorage.setItem(KEY, key)
  $('#key-status').textContent = 'Key accepted.'
  $('#work').hidden = false
  // The rooms' lesson choices list the library's videos: those first.
  await Promise.all([loadVideos().then(loadRooms), loadFrameworks()])
}

$('#key-form').addEventListener('submit', (event) => {
  event.preventDefault()
  useKey($('#admin-key').value.trim())
})
$('#forget-key').addEventListener('click', () => {
  sessionStorage.removeItem(KEY)
  adminKey = ''
  $('#admin-key').value = ''
  $('#work').hidden = true
  $('#key-status').textContent = 'Forgotten.'
})

// ---- uploads (tus 1.0.0, upload.js) --------------------------------------------------------

async function upload (file, title, consent) {
  const bar = $('#upload-bar')
  const text = $('#upload-text')
  $('#upload-progress').hidden = false
  const show = (sent) => {
    bar.value = file.size ? sent / file.size : 1
    text.textContent = progressText(file, sent)
  }
  await tusUpload(file, {
    title,
    consent,
    headers: { Authorization: `Bearer ${adminKey}` },
    onProgress: show,
    onRetry: (error) => { text.textContent = `The upload was interrupted (${error.message}); resuming…` }
  })
  bar.value = 1
  text.textContent = `Uploaded ${file.name}. The server is preparing it for watching; its status shows below.`
}

$('#upload-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const file = $('#upload-file').files[0]
  if (!file) return
  const button = $('#upload-button')
  button.disabled = true
  try {
    await upload(file, $('#upload-title').value.trim(), $('#upload-consent').value)
    $('#upload-form').reset()
  } catch (error) {
    $('#upload-text').textContent = `The upload failed: ${error.message}`
  } finally {
    button.disabled = false
    loadVideos()
  }
})

// ---- the library ----------------------------------------------------------------------------

let refresh = null

async function loadVideos () {
  try {
    videos = (await json('/api/videos')).videos
  } catch (error) {
    $('#videos').replaceChildren(h('tr', {}, h('td', { colspan: 5, class: 'error', text: error.message })))
    return
  }
  $('#videos').replaceChildren(...videos.map((v) => h('tr', { dataset: { video: v.id } },
    h('td', {}, v.title, h('br'), h('small', { class: 'hint', text: v.id })),
    h('td', { class: `status-${v.status}` }, statusText(v),
      v.status === 'ingesting' || v.status === 'uploading' ? h('progress', { max: 1, value: v.status === 'uploading' ? v.upload_offset / Math.max(1, v.upload_length) : v.progress }) : null),
    h('td', { text: v.duration ? formatTime(v.duration) : '–' }),
    h('td', { text: new Date(v.created * 1000).toLocaleString() }),
    h('td', {}, v.consent === 'not_obtained'
      ? h('button', {
        type: 'button',
        class: 'record-consent',
        text: 'Record consent',
        title: 'Not shown in rooms until consent for it is recorded',
        onclick: async () => {
          if (!confirm(`Consent covers “${v.title}”: the people in it (or their parents) agreed to its use for coaching?`)) return
          await api(`/api/videos/${encodeURIComponent(v.id)}`, {
            method: 'PATCH',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ consent: 'obtained' })
          })
          loadVideos()
        }
      })
      : null, h('button', {
      type: 'button',
      text: 'Delete',
      onclick: async () => {
        if (!confirm(`Delete “${v.title}” and its files? Rooms using it will have no video.`)) return
        await api(`/api/videos/${encodeURIComponent(v.id)}`, { method: 'DELETE' })
        loadVideos()
      }
    })))))
  const select = $('#room-video')
  const chosen = select.value
  select.replaceChildren(h('option', { value: '', text: '(none yet)' }),
    ...videos.filter((v) => v.status !== 'failed').map((v) => h('option', { value: v.id, text: `${v.title} (${v.status})` })))
  select.value = chosen
  clearTimeout(refresh)
  if (videos.some((v) => v.status === 'queued' || v.status === 'ingesting')) refresh = setTimeout(loadVideos, 2000)
}

// ---- rooms and invites ----------------------------------------------------------------------

async function loadFrameworks () {
  const { frameworks } = await (await fetch('/api/frameworks')).json()
  $('#room-framework').replaceChildren(h('option', { value: '', text: '(none)' }),
    ...frameworks.map((f) => h('option', { value: f.id, text: f.name })))
}

async function loadRooms () {
  const { rooms } = await json('/api/rooms')
  const titleOf = (id) => videos.find((v) => v.id === id)?.title ?? id
  $('#rooms').replaceChildren(...rooms.map((room) => h('tr', { dataset: { room: room.id } },
    h('td', {}, room.title, h('br'), h('small', { class: 'hint', text: room.id })),
    h('td', {}, lessonChoice(room, titleOf)),
    h('td', {}, inviteForm(room)))))
}

/** The room's lesson, which the admin may change (back) to another ready video of the room's
 * school: every page in the room then shows it, each lesson with its own notes. */
function lessonChoice (room, titleOf) {
  const ready = videos.filter((v) => v.status === 'ready' && (v.org ?? null) === (room.org ?? null))
  const options = ready.map((v) => h('option', { value: v.id, text: v.title }))
  if (room.video && !ready.some((v) => v.id === room.video)) {
    options.unshift(h('option', { value: room.video, text: titleOf(room.video) }))
  }
  if (!room.video) options.unshift(h('option', { value: '', text: '–' }))
  const select = h('select', { 'aria-label': `Lesson shown in ${room.title}` }, ...options)
  select.value = room.video ?? ''
  const said = h('small', { class: 'hint', role: 'status' })
  select.addEventListener('change', async () => {
    if (!select.value) return
    try {
      await json(`/api/rooms/${encodeURIComponent(room.id)}`, {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ video: select.value })
      })
      said.textContent = `The room shows “${titleOf(select.value)}” now.`
    } catch (error) {
      said.textContent = `Could not change the lesson: ${error.message}`
      select.value = room.video ?? ''
    }
  })
  return h('div', {}, select, h('br'), said)
}

function inviteForm (room) {
  const out = h('div', { class: 'invites' })
  const coach = h('input', { type: 'text', value: 'Coach', 'aria-label': 'Coach’s name', maxlength: 200 })
  const teacher = h('input', { type: 'text', value: 'Teacher', 'aria-label': 'Teacher’s name', maxlength: 200 })
  const form = h('form', { class: 'invite-form' },
    h('label', {}, 'Coach', coach), h('label', {}, 'Teacher', teacher),
    h('button', { type: 'submit', text: 'Make invite links' }))
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    try {
      const made = await json(`/api/rooms/${encodeURIComponent(room.id)}/invites`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          invites: [
            { role: 'coach', name: coach.value.trim() || 'Coach' },
            { role: 'teacher', name: teacher.value.trim() || 'Teacher' },
            { role: 'observer', name: 'Observer' }
          ]
        })
      })
      const expires = new Date(made.expires * 1000).toLocaleString()
      out.replaceChildren(...made.invites.map((invite) => {
        const link = location.origin + invite.path
        const field = h('input', { type: 'text', readonly: true, value: link, 'aria-label': `${invite.role} invite link` })
        return h('div', { class: 'invite', dataset: { role: invite.role } },
          h('strong', { text: `${invite.role} (${invite.name})` }), field,
          h('button', {
            type: 'button',
            text: 'Copy',
            onclick: async (e) => {
              field.select()
              try { await navigator.clipboard.writeText(link) } catch { document.execCommand('copy') }
              e.target.textContent = 'Copied'
            }
          }))
      }), h('p', { class: 'hint', text: `These links work until ${expires}. Anyone with a link joins as its person: send each one only to them.` }))
    } catch (error) {
      out.replaceChildren(h('p', { class: 'error', text: error.message }))
    }
  })
  return h('div', {}, form, out)
}

$('#room-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const body = { title: $('#room-title').value.trim() }
  if ($('#room-video').value) body.video = $('#room-video').value
  if ($('#room-framework').value) body.framework = $('#room-framework').value
  try {
    const room = await json('/api/rooms', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
    $('#room-status').textContent = `Created room “${room.title}” (${room.id}).`
    $('#room-form').reset()
    loadRooms()
  } catch (error) {
    $('#room-status').textContent = `Could not create the room: ${error.message}`
  }
})

if (adminKey) {
  $('#admin-key').value = adminKey
  useKey(adminKey)
}
