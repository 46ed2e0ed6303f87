// The classroom device's page: the session page opened with a `camera` link (or any link with
// #publish, for a teacher who publishes from a laptop). A camera preview, one big Start/Stop
// button, and the camera and microphone published over WHIP (docs/live.md). The device may be
// the teacher's earpiece: its audio is sendrecv when the link allows hearing the talk-back.
import { renderMembers } from './members.js'
import { Publisher, problemText } from './live.js'
import { RoomConnection } from './room.js'
import { $ } from './util.js'
import { hasWebRTC } from './video.js'

export function startPublishPage (session) {
  document.body.classList.add('publish-mode')
  document.body.classList.remove('loading')
  $('.layout').hidden = true
  $('.skip').hidden = true
  $('.exports').hidden = true
  $('#publish-view').hidden = false
  document.title = `cocoach: ${session.roomId} (classroom)`

  const status = $('#publish-status')
  const button = $('#publish-toggle')
  const say = (text) => { status.textContent = text }
  if (!hasWebRTC() || !navigator.mediaDevices?.getUserMedia) {
    say('This browser cannot send video (no WebRTC or no camera access). Open this link in a current Chrome, Edge, Firefox or Safari.')
    return
  }

  const room = new RoomConnection(session.base, session.roomId, session.token)
  session.room = room
  let publisher = null
  let problem = ''

  const render = () => {
    const live = room.live
    const mine = live && live.publisher === session.sub
    const state = publisher?.status ?? 'off'
    const on = Boolean(publisher?.wanted) || state === 'reconnecting'
    button.textContent = on ? 'Stop the live lesson' : 'Start the live lesson'
    button.classList.toggle('stop', on)
    button.setAttribute('aria-pressed', String(on))
    button.disabled = !room.welcomed || !room.may('publish')
    const badge = $('#publish-badge')
    badge.hidden = !(mine && state === 'on')
    document.body.dataset.publish = state
    let text
    if (!room.welcomed) text = room.status === 'lost' ? 'Connection to the server lost. Reconnecting…' : 'Connecting to the server…'
    else if (!room.may('publish')) text = 'This link may not send a live lesson. Ask whoever invited you for a classroom link.'
    else if (state === 'connecting') text = 'Connecting… the coach will see the class in a moment.'
    else if (state === 'on' && mine && live.status === 'live') text = `LIVE: the coach can see and hear the class. It is being recorded (since ${new Date(live.since * 1000).toLocaleTimeString()}).`
    else if (state === 'on') text = 'Connected; starting the live lesson…'
    else if (state === 'reconnecting') text = 'The connection dropped. Reconnecting… the lesson goes on as soon as it is back.'
    else if (state === 'error') text = `Could not go live: ${problem}`
    else if (live && !mine) text = `${live.name} is sending this room’s live lesson now. Only one device at a time can.`
    else text = 'Not live. Press Start when the lesson begins: the coach will see and hear the class, and the lesson is recorded.'
    say(text)
    const talkback = room.talkback
    const onAir = $('#publish-onair')
    const hears = room.may('hear_talkback')
    onAir.textContent = talkback ? `${talkback.name} is talking${hears ? ' to you: listen on this device' : ' to the teacher'}.` : ''
    onAir.hidden = !talkback
    if (room.welcomed) renderMembers($('#members'), room)
  }

  const preview = async () => {
    try {
      const stream = await publisher.media()
      $('#preview').srcObject = stream
    } catch (error) {
      problem = problemText(error)
      say(`The camera is not available: ${problem}`)
    }
  }

  room.on('status', (state, detail) => {
    if (state === 'fatal') return session.fatal(detail.message)
    session.updateBanner()
    render()
  })
  room.on('welcome', () => {
    $('#room-title').textContent = room.room.title
    document.title = `${room.room.title} · classroom · cocoach`
    if (!publisher && room.may('publish')) {
      publisher = new Publisher($('#publish-earpiece'), room.may('hear_talkback'), session.base, session.roomId, session.token)
      publisher.on('status', (state, detail) => {
        if (state === 'error') problem = detail
        room.send({ type: 'presence', state: { link: 'unknown', video: state === 'on' ? 'publishing' : state } })
        render()
      })
      preview()
    }
    room.send({ type: 'presence', status: 'here' })
    render()
  })
  room.on('members', render)
  room.on('live', render)
  room.on('talkback', render)
  room.connect()

  button.addEventListener('click', () => {
    if (!publisher) return
    if (publisher.wanted || publisher.status === 'reconnecting') publisher.stop()
    else {
      problem = ''
      publisher.start().then(() => { $('#preview').srcObject = publisher.stream })
    }
    render()
  })
  window.addEventListener('pagehide', () => publisher?.release())
  window.cocoach = { session, room, get publisher () { return publisher } }
  render()
}
