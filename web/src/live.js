// The live lesson's media from the page (docs/live.md): the coach's talk-back microphone
// (WHIP to /talkback), the teacher's earpiece (WHEP ?source=talkback) and the classroom
// device publishing camera and microphone (WHIP to /whip). Each is one RTCPeerConnection whose
// offer is POSTed after ICE gathering, and which is ended with a DELETE of its Location.
import { Emitter, errorOf } from './util.js'
import { gathered, parseIceLinks } from './video.js'

/** A refusal from the server, with its JSON error's code and message. */
export class MediaRefused extends Error {
  constructor (status, code, message) {
    super(message || `the server answered ${status}`)
    this.status = status
    this.code = code
  }
}

/** Offer, POST, answer: the session's absolute Location. Throws MediaRefused on a refusal. */
export async function negotiate (pc, endpoint, token) {
  await pc.setLocalDescription(await pc.createOffer())
  await gathered(pc)
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${token}` },
    body: pc.localDescription.sdp
  })
  if (response.status !== 201) {
    const { code, message } = await errorOf(response)
    throw new MediaRefused(response.status, code, message)
  }
  const location = new URL(response.headers.get('Location'), endpoint).href
  await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() })
  return { location, iceServers: parseIceLinks(response.headers.get('Link')) }
}

function hangUp (location, token) {
  if (!location) return
  fetch(location, { method: 'DELETE', keepalive: true, headers: { Authorization: `Bearer ${token}` } }).catch(() => {})
}

/** Words for a failure, for coaches and teachers. */
export function problemText (error) {
  if (error?.name === 'NotAllowedError') return 'The browser was not allowed to use the microphone or camera. Allow it in the address bar and try again.'
  if (error?.name === 'NotFoundError') return 'No microphone or camera was found on this device.'
  if (error instanceof MediaRefused) return error.message
  return 'The connection to the server failed. Try again in a moment.'
}

/**
 * One media session that can be switched on and off: `status` is off | connecting | on | error.
 * Subclasses give `_open()` (sets this.pc, returns the endpoint's answer) and may clean up more.
 */
class Switchable extends Emitter {
  constructor (base, room, token) {
    super()
    this.base = `${base}/rooms/${encodeURIComponent(room)}`
    this.token = token
    this.pc = null
    this.location = null
    this.status = 'off'
    this.wanted = false
    this._generation = 0
  }

  _set (status, detail = '') {
    this.status = status
    this.lastDetail = detail
    this.emit('status', status, detail)
  }

  async start () {
    if (this.wanted) return
    this.wanted = true
    const generation = ++this._generation
    this._set('connecting')
    try {
      await this._open(generation)
      if (generation !== this._generation) return
      this.pc.onconnectionstatechange = () => {
        if (generation !== this._generation) return
        const pc = this.pc
        const state = pc.connectionState
        clearTimeout(this._blip)
        if (state === 'connected') this._set('on')
        else if (state === 'failed') this._failed(generation, new Error('connection failed'))
        else if (state === 'disconnected') {
          // Often a blip that ICE recovers from; a line down for 4 s is made again.
          this._blip = setTimeout(() => {
            if (generation === this._generation && pc.connectionState !== 'connected') {
              this._failed(generation, new Error('connection failed'))
            }
          }, 4000)
        }
      }
      if (this.pc.connectionState === 'connected') this._set('on')
    } catch (error) {
      if (generation === this._generation) this._failed(generation, error)
    }
  }

  _failed (generation, error) {
    console.warn(this.constructor.name, error)
    this._close()
    this.wanted = false
    this._set('error', problemText(error))
  }

  stop () {
    if (!this.wanted && this.status === 'off') return
    this.wanted = false
    this._generation++
    this._close()
    this._set('off')
  }

  _close () {
    clearTimeout(this._blip)
    hangUp(this.location, this.token)
    this.location = null
    if (this.pc) {
      this.pc.ontrack = null
      this.pc.onconnectionstatechange = null
      this.pc.close()
      this.pc = null
    }
  }
}

/** The coach's microphone into the teacher's earpiece: WHIP, audio sendonly. */
export class TalkBack extends Switchable {
  async _open (generation) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false })
    if (generation !== this._generation) {
      stream.getTracks().forEach((t) => t.stop())
      return
    }
    this.stream = stream
    this.pc = new RTCPeerConnection()
    this.pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly', streams: [stream] })
    const { location } = await negotiate(this.pc, `${this.base}/talkback`, this.token)
    if (generation !== this._generation) return hangUp(location, this.token)
    this.location = location
  }

  _close () {
    super._close()
    this.stream?.getTracks().forEach((t) => t.stop())
    this.stream = null
  }
}

/** The earpiece: WHEP ?source=talkback, audio only, played by `audio`. */
export class Earpiece extends Switchable {
  constructor (audio, ...rest) {
    super(...rest)
    this.audio = audio
  }

  async _open (generation) {
    this.pc = new RTCPeerConnection()
    this.pc.addTransceiver('audio', { direction: 'recvonly' })
    this.pc.ontrack = (event) => {
      this.audio.srcObject = event.streams[0] ?? new MediaStream([event.track])
      this.audio.play().catch(() => {})
    }
    const { location } = await negotiate(this.pc, `${this.base}/whep?source=talkback`, this.token)
    if (generation !== this._generation) return hangUp(location, this.token)
    this.location = location
  }

  _close () {
    super._close()
    if (this.audio) this.audio.srcObject = null
  }
}

/**
 * The classroom device: camera (VP8, sendonly) and microphone over WHIP. With `earpiece`, the
 * audio is sendrecv and what comes back (the coach's talk-back) plays on `audio`. A dropped
 * connection is made again while wanted: the server lets the same user replace its session.
 */
export class Publisher extends Switchable {
  constructor (audio, earpiece, ...rest) {
    super(...rest)
    this.audio = audio
    this.earpiece = earpiece
    this.stream = null
    this._retry = null
  }

  /** The camera and microphone, asked for once (the preview shows them before going live). */
  async media () {
    if (!this.stream) {
      this.stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
        audio: { echoCancellation: true, noiseSuppression: true }
      })
    }
    return this.stream
  }

  async _open (generation) {
    const stream = await this.media()
    if (generation !== this._generation) return
    this.pc = new RTCPeerConnection()
    const video = stream.getVideoTracks()[0]
    const audio = stream.getAudioTracks()[0]
    if (video) {
      const transceiver = this.pc.addTransceiver(video, { direction: 'sendonly', streams: [stream] })
      preferVP8(transceiver)
    }
    if (audio) this.pc.addTransceiver(audio, { direction: this.earpiece ? 'sendrecv' : 'sendonly', streams: [stream] })
    this.pc.ontrack = (event) => {
      if (event.track.kind !== 'audio' || !this.audio) return
      this.audio.srcObject = new MediaStream([event.track])
      this.audio.play().catch(() => {})
    }
    const { location } = await negotiate(this.pc, `${this.base}/whip`, this.token)
    if (generation !== this._generation) return hangUp(location, this.token)
    this.location = location
  }

  _failed (generation, error) {
    // A refusal is final (another device publishes, no permission); a dropped line is not.
    const final = (error instanceof MediaRefused && error.status < 500) || error instanceof DOMException
    if (final) {
      return super._failed(generation, error)
    }
    console.warn('publisher: reconnecting', error)
    // No DELETE: that would end the lesson. Publishing again replaces the old session, and
    // the server keeps the lesson and its recording going meanwhile ("interrupted").
    this.location = null
    this._close()
    this._set('reconnecting')
    clearTimeout(this._retry)
    this._retry = setTimeout(() => {
      if (generation !== this._generation || !this.wanted) return
      this.wanted = false
      this.start()
    }, 2000)
  }

  stop () {
    clearTimeout(this._retry)
    super.stop()
  }

  /** Stop the camera too (leaving the page). */
  release () {
    this.stop()
    this.stream?.getTracks().forEach((t) => t.stop())
    this.stream = null
  }
}

/** VP8 first: the server relays and records VP8 and Opus as sent (docs/live.md). */
export function preferVP8 (transceiver) {
  const codecs = window.RTCRtpSender?.getCapabilities?.('video')?.codecs
  if (!codecs || !transceiver.setCodecPreferences) return
  const vp8 = codecs.filter((c) => /vp8/i.test(c.mimeType))
  const rest = codecs.filter((c) => !/vp8/i.test(c.mimeType))
  try { transceiver.setCodecPreferences([...vp8, ...rest]) } catch { /* keep the default order */ }
}
