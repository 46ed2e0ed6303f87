// The conversation bar (docs/web.md): join or leave, mute (M; while muted, hold M to talk), the
// microphone picker and its level, the camera and the faces beside the lesson, the switch that
// dips the lesson while others talk, and what the room measures, said before anyone speaks.
import { Conversation, Faces } from './voice.js'
import { $, h } from './util.js'

const DUCKED = 0.25 // about -12 dB
const DOWN_PER_TICK = 0.15 // the dip takes about 0.3 s
const UP_PER_TICK = 0.075 // and coming back about 0.5 s
const TICK_MS = 50
const HOLD_MS = 400 // M held longer than this while muted is push-to-talk
const DUCK_KEY = 'cocoach.duck'

const MEASURED = {
  true: 'This room measures who talks when — never what is said. No audio is recorded.',
  false: 'This room does not measure who talks. No audio is recorded.'
}

export class ConversationView {
  /** session: the page's Session (room, base, roomId, token, sub, nameOf, toast). */
  constructor (session) {
    this.s = session
    this.voice = new Conversation($('#voice-audio'), session.base, session.roomId, session.token)
    this.faces = new Faces(session.base, session.roomId, session.token)
    this.held = null // {at, wasMuted} while M is down
    this.tiles = new Map() // 'me' or a user sub -> the tile's <figure>
    this.duck = localStorage.getItem(DUCK_KEY) !== 'off'
    this.volume = 1
    this._ramp = null
    this.voice.on('status', () => this.render())
    this.voice.on('connected', () => {
      this.sendMute()
      this.renderDevices() // labelled now that the microphone is allowed
    })
    this.voice.on('level', (level) => this.showLevel(level))
    this.voice.on('notice', (text) => this.s.toast(text))
    this.voice.on('camera', () => this.renderFaces())
    this.faces.on('change', () => this.renderFaces())
    this.wire()
  }

  wire () {
    $('#voice-join').addEventListener('click', () => {
      if (this.voice.wanted) this.leave()
      else this.voice.join(this.mayTalk())
    })
    $('#voice-mute').addEventListener('click', () => {
      if (this.voice.mode === 'talk') this.setMuted(!this.voice.muted)
      else if (this.voice.mode === 'listen' && this.mayTalk()) this.voice.talk()
    })
    $('#voice-camera').addEventListener('click', () => this.voice.setCamera(!this.voice.camera))
    $('#voice-device').addEventListener('change', (event) => {
      this.voice.useDevice(event.target.value).catch((error) => {
        this.s.toast(`That microphone could not be opened (${error?.name ?? error}); the one before is still on.`)
        this.renderDevices()
      })
    })
    navigator.mediaDevices?.addEventListener?.('devicechange', () => this.renderDevices())
    const duck = $('#voice-duck')
    duck.checked = this.duck
    duck.addEventListener('change', () => {
      this.duck = duck.checked
      localStorage.setItem(DUCK_KEY, this.duck ? 'on' : 'off')
      this.updateDuck()
    })
    window.addEventListener('pagehide', () => this.leave())
  }

  /** Speak permission now: the member's own `speak` (an observer may be allowed live). */
  mayTalk () {
    const room = this.s.room
    return typeof room.you?.speak === 'boolean' ? room.you.speak : room.may('speak')
  }

  leave () {
    this.faces.stop() // the cameras watched first: the server may end them with the voice session
    this.voice.leave()
    this.renderFaces()
  }

  setMuted (muted) {
    this.voice.setMuted(muted)
    this.sendMute()
  }

  sendMute () {
    if (this.voice.mode === 'talk') this.s.room.send({ type: 'mute', muted: this.voice.muted })
  }

  onWelcome () {
    $('#voice').hidden = false
    const measured = this.s.room.talkMeasured
    $('#voice-notice').textContent = measured === null ? '' : MEASURED[measured]
    this.sendMute() // a new member after a reconnect: say again whether we are muted
    this.onMembers()
  }

  onMembers () {
    const room = this.s.room
    if (!room.welcomed) return
    if (!this.mayTalk()) this._allowedSaid = false
    if (this.voice.mode === 'talk' && !this.mayTalk()) {
      this.voice.listen()
      this.s.toast('The coach took back your turn to speak: you are listening to the conversation.')
    } else if (this.voice.mode === 'listen' && this.mayTalk() && !this._allowedSaid) {
      this._allowedSaid = true
      this.s.toast('The coach lets you speak: press “Talk too” to use your microphone.')
    }
    const cameras = new Set()
    for (const m of room.members.values()) {
      if (m.voice?.camera && m.user !== this.s.sub) cameras.add(m.user)
    }
    this.faces.update(this.voice.wanted ? [...cameras] : [])
    this.updateDuck()
    this.render()
  }

  // ---- the bar ------------------------------------------------------------------------

  render () {
    const voice = this.voice
    const mayTalk = this.mayTalk()
    const joined = voice.wanted
    const talking = joined && voice.mode === 'talk'
    const join = $('#voice-join')
    join.textContent = joined ? 'Leave the conversation' : mayTalk ? 'Join the conversation' : 'Listen to the conversation'
    join.setAttribute('aria-pressed', String(joined))
    join.title = joined
      ? 'Leave the conversation: your microphone and camera are closed'
      : mayTalk ? 'Talk with the others in the room, with your microphone' : 'Hear the others in the room talk'
    const mute = $('#voice-mute')
    mute.hidden = !talking && !(joined && voice.mode === 'listen' && mayTalk)
    mute.textContent = talking ? (voice.muted ? 'Unmute' : 'Mute') : 'Talk too (microphone)'
    mute.setAttribute('aria-pressed', String(talking && voice.muted))
    mute.classList.toggle('muted', talking && voice.muted)
    $('#voice-level').hidden = !talking
    $('#voice-camera').hidden = !talking
    $('#voice-camera').textContent = voice.camera ? 'Camera: on' : 'Camera: off'
    $('#voice-camera').setAttribute('aria-pressed', String(voice.camera))
    if (!talking) $('#voice-device').hidden = true
    document.body.dataset.voice = joined ? `${voice.mode}-${voice.status}` : 'off'
    $('#voice-status').textContent = this.statusText()
  }

  statusText () {
    const voice = this.voice
    const problem = voice.problem ? `${voice.problem} ` : ''
    if (!voice.wanted) return voice.status === 'error' ? voice.detail : ''
    if (voice.status === 'connecting') return `${problem}Joining the conversation…`
    if (voice.status === 'reconnecting') return `${problem}The conversation dropped; joining again…`
    if (voice.status === 'error') return `${problem}${voice.detail}`
    if (voice.mode === 'listen') return `${problem}You are listening.`
    return voice.muted ? 'You are muted (hold M to talk).' : 'Your microphone is on.'
  }

  async renderDevices () {
    const select = $('#voice-device')
    if (this.voice.mode !== 'talk') return
    const devices = await this.voice.devices()
    const current = this.voice.mic?.getAudioTracks()[0]?.getSettings?.().deviceId ?? this.voice.deviceId
    select.replaceChildren(...devices.map((d, i) => h('option', {
      value: d.deviceId,
      text: d.label || `Microphone ${i + 1}`,
      selected: d.deviceId === current
    })))
    select.hidden = devices.length < 2 || this.voice.mode !== 'talk'
  }

  showLevel (level) {
    const meter = $('#voice-level')
    meter.firstElementChild.style.width = `${Math.round(level * 100)}%`
    meter.setAttribute('aria-valuenow', String(Math.round(level * 100)))
  }

  // ---- the faces ----------------------------------------------------------------------

  renderFaces () {
    const wanted = new Map()
    if (this.voice.cameraStream) wanted.set('me', { stream: this.voice.cameraStream, name: 'You' })
    for (const { sub, stream } of this.faces.streams()) wanted.set(sub, { stream, name: this.s.nameOf(sub) })
    for (const [key, tile] of this.tiles) {
      if (!wanted.has(key)) {
        tile.remove()
        this.tiles.delete(key)
      }
    }
    const faces = $('#faces')
    for (const [key, { stream, name }] of wanted) {
      let tile = this.tiles.get(key)
      if (!tile) {
        const video = h('video', { autoplay: true, playsinline: true, muted: true, 'aria-label': `${name}'s camera` })
        video.muted = true
        tile = h('figure', { class: 'face' + (key === 'me' ? ' me' : ''), dataset: { user: key } }, video, h('figcaption', { text: name }))
        this.tiles.set(key, tile)
        faces.append(tile)
      }
      const video = tile.querySelector('video')
      if (video.srcObject !== stream) {
        video.srcObject = stream
        video.play().catch(() => {})
      }
    }
    faces.hidden = wanted.size === 0
  }

  // ---- the lesson dips while others talk ------------------------------------------------

  updateDuck () {
    const room = this.s.room
    const others = [...room.members.values()].some((m) => m.voice?.speaking && m.user !== this.s.sub)
    // On every page, joined or not (the issue: "dips on every page"): someone is talking
    // about the lesson, and the page that has not joined yet hears them once it does.
    this.target = this.duck && others ? DUCKED : 1
    if (this._ramp || this.volume === this.target) return
    this._ramp = setInterval(() => {
      const step = this.target < this.volume ? DOWN_PER_TICK : UP_PER_TICK
      const gap = this.target - this.volume
      this.volume = Math.abs(gap) <= step ? this.target : this.volume + Math.sign(gap) * step
      $('#lesson').volume = this.volume
      if (this.volume === this.target) {
        clearInterval(this._ramp)
        this._ramp = null
      }
    }, TICK_MS)
  }

  // ---- keys ---------------------------------------------------------------------------

  /** M: mute or unmute; while muted, held, talk until released. False if not in use. */
  keyDown (event) {
    if (this.voice.mode !== 'talk' || !this.voice.wanted) return false
    if (event.repeat || this.held) return true
    this.held = { at: performance.now(), wasMuted: this.voice.muted }
    if (this.voice.muted) this.setMuted(false)
    return true
  }

  keyUp () {
    const held = this.held
    if (!held) return false
    this.held = null
    if (this.voice.mode !== 'talk') return true
    if (!held.wasMuted || performance.now() - held.at > HOLD_MS) this.setMuted(true)
    return true
  }
}
