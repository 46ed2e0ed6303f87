// The room's conversation, the media side (docs/conversation.md): the microphone (and the
// camera, when switched on) goes up over WHIP to /rooms/{room}/voice, and what comes back on
// the same audio section is everyone else mixed into one track. Without a microphone, or without
// the `speak` permission, the page listens only (WHEP ?source=voice). Every remote track plays
// through a media element, never through Web Audio: Chrome's echo canceller hears only element
// playback (DESIGN §3). The level meter reads the microphone through an AnalyserNode, which
// plays nothing.
import { MediaRefused, negotiate, preferVP8 } from './live.js'
import { Emitter } from './util.js'

const MIC = { echoCancellation: true, noiseSuppression: true, autoGainControl: true }
const CAMERA = { width: { ideal: 320 }, height: { ideal: 180 }, frameRate: { ideal: 15 } }
const DISCONNECTED_MS = 2000 // a line down this long is made again (a home worker failed over)
const RETRY_MS = [300, 1000, 2000, 3000, 5000]

/** Words for a microphone we could not open; null if the error is not about the device. */
export function micProblem (error) {
  const name = error?.name
  if (name === 'NotAllowedError' || name === 'SecurityError') {
    return 'Your microphone is blocked: you can still listen, watch and write. To talk, allow the microphone in the address bar and join again.'
  }
  if (name === 'NotFoundError' || name === 'OverconstrainedError') {
    return 'Your microphone is not found: you can still listen, watch and write. Plug one in and join again to talk.'
  }
  if (name === 'NotReadableError' || name === 'AbortError') {
    return 'Your microphone is busy in another program: you can still listen, watch and write. Close that program and join again to talk.'
  }
  if (!navigator.mediaDevices?.getUserMedia) {
    return 'This browser cannot use a microphone here: you can still listen, watch and write.'
  }
  return null
}

/** End a session: DELETE its resource first, then close the connection. The other order
 * lets the server see the connection close and end the session before the DELETE arrives. */
function hangUp (pc, location, token) {
  const close = () => pc?.close()
  if (!location) return close()
  fetch(location, { method: 'DELETE', keepalive: true, headers: { Authorization: `Bearer ${token}` } })
    .catch(() => {}).finally(close)
  setTimeout(close, 1000)
}

/**
 * One member's part in the conversation. `status`: off | connecting | on | reconnecting | error;
 * `mode`: talk (microphone up, the mix down) | listen (the mix only). Events: status, level
 * (0..1, the microphone's loudness), camera (the local camera stream or null), notice (a text).
 */
export class Conversation extends Emitter {
  constructor (audio, base, room, token) {
    super()
    this.audio = audio
    this.base = `${base}/rooms/${encodeURIComponent(room)}`
    this.token = token
    this.status = 'off'
    this.mode = null
    this.detail = ''
    this.wanted = false
    this.muted = false
    this.camera = false // the camera is wanted in the conversation
    this.problem = null // why the microphone could not be used, for the page to say
    this.deviceId = null
    this.mic = null // the microphone's MediaStream
    this.cameraStream = null
    this.pc = null
    this.location = null
    this.iceServers = []
    this._generation = 0
    this._attempt = 0
    this._timer = null
    this._meter = null
  }

  _set (status, detail = '') {
    this.status = status
    this.detail = detail
    this.emit('status', status, detail)
  }

  /** Join: with the microphone if `speak` and one can be opened, else listening only. */
  async join (speak) {
    if (this.wanted) return
    this.wanted = true
    this.problem = null
    this._set('connecting')
    let mode = 'listen'
    if (speak) {
      try {
        await this._openMic()
        mode = 'talk'
      } catch (error) {
        if (!this.wanted) return
        this.problem = micProblem(error) ?? `Your microphone could not be opened (${error?.message ?? error}): you can still listen, watch and write.`
      }
    }
    if (!this.wanted) return this._releaseMic()
    this.mode = mode
    this.connect()
  }

  leave () {
    this.wanted = false
    this._generation++
    clearTimeout(this._timer)
    this._hangUp()
    this._releaseMic()
    this._releaseCamera()
    this.mode = null
    this.camera = false
    this._set('off')
  }

  /** Talk rather than listen (speak was granted, or the microphone may work now). */
  async talk () {
    if (!this.wanted) return this.join(true)
    if (this.mode === 'talk') return
    try {
      await this._openMic()
    } catch (error) {
      this.problem = micProblem(error) ?? 'Your microphone could not be opened: you can still listen, watch and write.'
      this.emit('status', this.status, this.detail)
      return
    }
    this.problem = null
    this.mode = 'talk'
    this.connect()
  }

  /** Listen only (speak was taken back): the microphone and camera are closed. */
  listen () {
    if (!this.wanted || this.mode === 'listen') return
    this._releaseMic()
    this._releaseCamera()
    this.camera = false
    this.mode = 'listen'
    this.connect()
  }

  setMuted (muted) {
    this.muted = Boolean(muted)
    for (const track of this.mic?.getAudioTracks() ?? []) track.enabled = !this.muted
    this.emit('status', this.status, this.detail)
  }

  /** The microphones the browser lists (labels once the microphone was allowed). */
  async devices () {
    try {
      const all = await navigator.mediaDevices.enumerateDevices()
      return all.filter((d) => d.kind === 'audioinput')
    } catch {
      return []
    }
  }

  /** Use another microphone: the new track replaces the old one on the same connection. */
  async useDevice (deviceId) {
    this.deviceId = deviceId || null
    if (this.mode !== 'talk' || !this.mic) return
    const old = this.mic
    const stream = await navigator.mediaDevices.getUserMedia({ audio: this._micConstraints(), video: false })
    const track = stream.getAudioTracks()[0]
    track.enabled = !this.muted
    const sender = this.pc?.getSenders().find((s) => s.track?.kind === 'audio')
    if (sender) await sender.replaceTrack(track)
    this.mic = stream
    this._meterOn(stream)
    old.getTracks().forEach((t) => t.stop())
  }

  /** The camera in the conversation, or not: a new offer replaces the session. */
  async setCamera (on) {
    if (on === this.camera || this.mode !== 'talk') return
    if (on) {
      try {
        this.cameraStream = await navigator.mediaDevices.getUserMedia({ video: CAMERA, audio: false })
      } catch (error) {
        this.emit('notice', error?.name === 'NotAllowedError'
          ? 'Your camera is blocked: allow it in the address bar to send your face.'
          : 'No camera could be opened on this device.')
        return
      }
    } else {
      this._releaseCamera()
    }
    this.camera = on
    this.emit('camera', this.cameraStream)
    this.connect()
  }

  _micConstraints () {
    return this.deviceId ? { ...MIC, deviceId: { exact: this.deviceId } } : MIC
  }

  async _openMic () {
    if (!navigator.mediaDevices?.getUserMedia) throw new Error('no getUserMedia')
    if (this.mic) return
    this.mic = await navigator.mediaDevices.getUserMedia({ audio: this._micConstraints(), video: false })
    for (const track of this.mic.getAudioTracks()) track.enabled = !this.muted
    this._meterOn(this.mic)
  }

  _releaseMic () {
    this._meterOff()
    this.mic?.getTracks().forEach((t) => t.stop())
    this.mic = null
  }

  _releaseCamera () {
    const had = Boolean(this.cameraStream)
    this.cameraStream?.getTracks().forEach((t) => t.stop())
    this.cameraStream = null
    if (had) this.emit('camera', null)
  }

  /** Connect (again). A new session of ours replaces the old one on the server: no DELETE. */
  async connect () {
    clearTimeout(this._timer)
    if (!this.wanted || (this.mode === 'talk' && !this.mic)) return
    const generation = ++this._generation
    this._dropPeer()
    if (this.status !== 'reconnecting') this._set('connecting')
    const pc = new RTCPeerConnection({ iceServers: this.iceServers })
    this.pc = pc
    let endpoint
    if (this.mode === 'talk') {
      const track = this.mic.getAudioTracks()[0]
      pc.addTransceiver(track, { direction: 'sendrecv', streams: [this.mic] })
      const video = this.camera && this.cameraStream?.getVideoTracks()[0]
      if (video) preferVP8(pc.addTransceiver(video, { direction: 'sendonly', streams: [this.cameraStream] }))
      endpoint = `${this.base}/voice`
    } else {
      pc.addTransceiver('audio', { direction: 'recvonly' })
      endpoint = `${this.base}/whep?source=voice`
    }
    pc.ontrack = (event) => {
      if (event.track.kind !== 'audio') return
      this.audio.srcObject = new MediaStream([event.track])
      this.audio.play().catch(() => {})
    }
    pc.onconnectionstatechange = () => this._onState(pc, generation)
    try {
      const { location, iceServers } = await negotiate(pc, endpoint, this.token)
      if (generation !== this._generation) return
      this.location = location
      if (iceServers.length) this.iceServers = iceServers
      // The server ending the session (its home failed over, or it was replaced) closes DTLS
      // at once, sooner than ICE notices: join again then.
      const dtls = pc.getTransceivers()[0]?.receiver.transport
      dtls?.addEventListener('statechange', () => {
        if (generation === this._generation && (dtls.state === 'closed' || dtls.state === 'failed')) {
          this._retry('The conversation dropped; joining again.')
        }
      })
      if (pc.connectionState === 'connected') this._connected()
    } catch (error) {
      if (generation !== this._generation) return
      this._refused(error)
    }
  }

  _refused (error) {
    if (error instanceof MediaRefused && error.code === 'cameras_full') {
      this._releaseCamera()
      this.camera = false
      this.emit('notice', error.message || 'Six cameras are on in this room already: yours stays off. You are in the conversation with your microphone.')
      this.connect() // audio only
    } else if (error instanceof MediaRefused && error.status === 403 && this.mode === 'talk') {
      // No speak permission (taken back, or never given): listen instead.
      this.emit('notice', error.message || 'You may not talk in this room right now: you are listening.')
      this.listen()
    } else if (error instanceof MediaRefused && error.status >= 400 && error.status < 500 && error.status !== 404 && error.status !== 409) {
      this._fail(error.message)
    } else {
      this._retry(error instanceof MediaRefused ? error.message : '')
    }
  }

  _fail (message) {
    this._dropPeer()
    this._set('error', message || 'The conversation could not be joined.')
  }

  _retry (detail) {
    this._dropPeer()
    this._set('reconnecting', detail)
    if (!this.wanted) return
    const delay = RETRY_MS[Math.min(this._attempt++, RETRY_MS.length - 1)]
    this._timer = setTimeout(() => { if (this.wanted) this.connect() }, delay)
  }

  _connected () {
    this._attempt = 0
    this._set('on')
    this.emit('connected')
  }

  _onState (pc, generation) {
    if (generation !== this._generation) return
    const state = pc.connectionState
    clearTimeout(this._timer)
    if (state === 'connected') this._connected()
    else if (state === 'failed' || state === 'closed') this._retry('The conversation dropped; joining again.')
    else if (state === 'disconnected') {
      this._timer = setTimeout(() => {
        if (generation === this._generation && pc.connectionState !== 'connected') {
          this._retry('The conversation dropped; joining again.')
        }
      }, DISCONNECTED_MS)
    }
  }

  _dropPeer () {
    this.location = null
    if (this.pc) {
      this.pc.ontrack = null
      this.pc.onconnectionstatechange = null
      this.pc.close()
      this.pc = null
    }
  }

  _hangUp () {
    const { pc, location } = this
    this.pc = null
    this.location = null
    if (pc) {
      pc.ontrack = null
      pc.onconnectionstatechange = null
    }
    hangUp(pc, location, this.token)
    if (this.audio) this.audio.srcObject = null
  }

  // ---- the level meter ----------------------------------------------------------------

  _meterOn (stream) {
    this._meterOff()
    const Context = window.AudioContext ?? window.webkitAudioContext
    if (!Context) return
    const context = new Context()
    const analyser = context.createAnalyser()
    analyser.fftSize = 1024
    context.createMediaStreamSource(stream).connect(analyser) // not to the speakers
    context.resume?.().catch(() => {})
    const samples = new Float32Array(analyser.fftSize)
    const timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples)
      let sum = 0
      for (const x of samples) sum += x * x
      const db = 10 * Math.log10(sum / samples.length + 1e-12)
      this.emit('level', Math.max(0, Math.min(1, (db + 60) / 50))) // -60..-10 dBFS
    }, 100)
    this._meter = { context, timer }
  }

  _meterOff () {
    if (!this._meter) return
    clearInterval(this._meter.timer)
    this._meter.context.close().catch(() => {})
    this._meter = null
    this.emit('level', 0)
  }
}

/** The others' cameras: one receive-only WHEP session per member whose camera is on. */
export class Faces extends Emitter {
  constructor (base, room, token) {
    super()
    this.base = `${base}/rooms/${encodeURIComponent(room)}`
    this.token = token
    this.views = new Map() // user sub -> {pc, location, stream, retry}
  }

  /** Watch exactly the cameras of `subs` (at most six are on in a room). */
  update (subs) {
    const wanted = new Set(subs)
    for (const sub of [...this.views.keys()]) if (!wanted.has(sub)) this._close(sub)
    for (const sub of wanted) if (!this.views.has(sub)) this._open(sub)
  }

  streams () { return [...this.views.entries()].map(([sub, view]) => ({ sub, stream: view.stream })) }

  async _open (sub, attempt = 0) {
    const pc = new RTCPeerConnection()
    const stream = new MediaStream()
    const view = { pc, location: null, stream, retry: null }
    this.views.set(sub, view)
    pc.addTransceiver('video', { direction: 'recvonly' })
    pc.ontrack = (event) => {
      stream.addTrack(event.track)
      this.emit('change')
    }
    pc.onconnectionstatechange = () => {
      if (this.views.get(sub) !== view) return
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') this._again(sub, view, attempt)
    }
    this.emit('change')
    try {
      const endpoint = `${this.base}/whep?source=camera&member=${encodeURIComponent(sub)}`
      const { location } = await negotiate(pc, endpoint, this.token)
      if (this.views.get(sub) !== view) return hangUp(pc, location, this.token)
      view.location = location
    } catch (error) {
      if (this.views.get(sub) !== view) return
      console.warn('camera of', sub, error)
      this._again(sub, view, attempt)
    }
  }

  _again (sub, view, attempt) {
    view.pc.close()
    if (attempt >= 4) return // the presence list will say when the camera is on again
    view.retry = setTimeout(() => {
      if (this.views.get(sub) === view) this._open(sub, attempt + 1)
    }, 1000 * (attempt + 1))
  }

  _close (sub) {
    const view = this.views.get(sub)
    if (!view) return
    this.views.delete(sub)
    clearTimeout(view.retry)
    view.pc.ontrack = null
    view.pc.onconnectionstatechange = null
    hangUp(view.pc, view.location, this.token)
    this.emit('change')
  }

  stop () { for (const sub of [...this.views.keys()]) this._close(sub) }
}
