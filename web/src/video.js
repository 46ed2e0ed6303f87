// The lesson video over WHEP (docs/media.md): a receive-only RTCPeerConnection whose offer is
// POSTed to /rooms/{room}/whep. The server paces the picture by the room's clock, so this
// element never pauses or seeks by itself: it shows what arrives.
import { Emitter, errorOf, sleep } from './util.js'

export const hasWebRTC = () => typeof window.RTCPeerConnection === 'function'

const GATHER_WAIT_MS = 1500

/** ICE servers from the answer's `Link: <url>; rel="ice-server"; username=…; credential=…`. */
export function parseIceLinks (header) {
  const servers = []
  if (!header) return servers
  for (const part of header.split(/,(?=\s*<)/)) {
    const match = part.match(/<([^>]+)>(.*)/)
    if (!match || !/rel="?ice-server"?/.test(match[2])) continue
    const server = { urls: match[1] }
    const user = match[2].match(/username="([^"]*)"/)
    const credential = match[2].match(/credential="([^"]*)"/)
    if (user) server.username = user[1]
    if (credential) server.credential = credential[1]
    servers.push(server)
  }
  return servers
}

export class LessonVideo extends Emitter {
  constructor (element, base, room, token) {
    super()
    this.element = element
    this.endpoint = `${base}/rooms/${encodeURIComponent(room)}/whep`
    this.token = token
    this.source = null // null: the server's choice ("auto"); "live" while the room is live
    this.pc = null
    this.resource = null
    this.iceServers = []
    this.status = 'idle' // idle | unsupported | connecting | connected | no-video | lost | refused
    this.framesShown = false
    this._generation = 0
    this._stopped = false
    this._retryTimer = null
    this._disconnectTimer = null
    this._attempt = 0
  }

  _set (status, detail = '') {
    this.status = status
    this.emit('status', status, detail)
  }

  start () {
    if (!hasWebRTC()) {
      this._set('unsupported')
      return
    }
    this._stopped = false
    this.connect()
  }

  /** Watch `source` (null: the server's choice), connecting again if it changes. */
  watch (source) {
    if (source === this.source) return
    this.source = source
    if (this.status !== 'idle' && this.status !== 'unsupported' && !this._stopped) this.connect()
  }

  /** Connect (again), dropping any previous session first. */
  async connect () {
    clearTimeout(this._retryTimer)
    const generation = ++this._generation
    this._teardown()
    this.framesShown = false
    this._set('connecting')
    const pc = new RTCPeerConnection({ iceServers: this.iceServers })
    this.pc = pc
    const stream = new MediaStream()
    pc.addTransceiver('video', { direction: 'recvonly' })
    pc.addTransceiver('audio', { direction: 'recvonly' })
    pc.ontrack = (event) => {
      stream.addTrack(event.track)
      if (this.element.srcObject !== stream) this.element.srcObject = stream
      this._play()
    }
    pc.onconnectionstatechange = () => this._onState(pc, generation)
    try {
      await pc.setLocalDescription(await pc.createOffer())
      await gathered(pc)
      if (generation !== this._generation) return
      const endpoint = this.source ? `${this.endpoint}?source=${this.source}` : this.endpoint
      const response = await fetch(endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${this.token}` },
        body: pc.localDescription.sdp
      })
      if (generation !== this._generation) return
      if (response.status !== 201) {
        await this._refused(response)
        return
      }
      this.resource = new URL(response.headers.get('Location'), this.endpoint).href
      const servers = parseIceLinks(response.headers.get('Link'))
      if (servers.length) this.iceServers = servers // used from the next connection on
      await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() })
      this._watchFrames(generation)
    } catch (error) {
      if (generation !== this._generation) return
      console.warn('lesson video:', error)
      this._retry('lost', 'The video connection failed; trying again.')
    }
  }

  async _refused (response) {
    const { code, message } = await errorOf(response)
    if (response.status === 409 || code === 'consent_missing') {
      // No video yet, still being prepared, or kept until consent is recorded: look again
      // in a while, so it appears by itself.
      this._teardown()
      this._set('no-video', message)
      this._retryTimer = setTimeout(() => this.connect(), 5000)
    } else if (response.status === 401 || response.status === 403 || response.status === 404) {
      this._teardown()
      this._set('refused', message || code)
    } else {
      this._retry('lost', message || `The server answered ${response.status}; trying again.`)
    }
  }

  _retry (status, detail) {
    this._teardown()
    this._set(status, detail)
    if (this._stopped) return
    const delay = Math.min(10, 1 * 2 ** this._attempt++)
    this._retryTimer = setTimeout(() => this.connect(), delay * 1000)
  }

  _onState (pc, generation) {
    if (generation !== this._generation) return
    const state = pc.connectionState
    clearTimeout(this._disconnectTimer)
    if (state === 'connected') {
      this._attempt = 0
      this._set('connected')
    } else if (state === 'failed') {
      this._retry('lost', 'The video connection dropped; reconnecting.')
    } else if (state === 'disconnected') {
      // Often a blip that ICE recovers from by itself; give it a moment first.
      this._disconnectTimer = setTimeout(() => {
        if (generation === this._generation && pc.connectionState !== 'connected') {
          this._retry('lost', 'The video connection dropped; reconnecting.')
        }
      }, 4000)
    }
  }

  _watchFrames (generation) {
    const element = this.element
    const seen = () => {
      if (generation !== this._generation) return
      if (!this.framesShown) {
        this.framesShown = true
        this.emit('frames')
      }
    }
    if ('requestVideoFrameCallback' in element) {
      element.requestVideoFrameCallback(seen)
    } else {
      element.addEventListener('loadeddata', seen, { once: true })
    }
  }

  async _play () {
    const element = this.element
    try {
      await element.play()
    } catch {
      // Autoplay with sound refused until the user interacts: start muted, offer sound.
      element.muted = true
      this.emit('muted')
      try { await element.play() } catch { /* shown as not playing */ }
    }
  }

  _teardown () {
    clearTimeout(this._disconnectTimer)
    if (this.resource) {
      const resource = this.resource
      this.resource = null
      fetch(resource, { method: 'DELETE', keepalive: true, headers: { Authorization: `Bearer ${this.token}` } }).catch(() => {})
    }
    if (this.pc) {
      this.pc.ontrack = null
      this.pc.onconnectionstatechange = null
      this.pc.close()
      this.pc = null
    }
  }

  stop () {
    this._stopped = true
    this._generation++
    clearTimeout(this._retryTimer)
    this._teardown()
  }
}

/** Wait (a while) for the local candidates: none is trickled, all go in the offer. */
export async function gathered (pc) {
  if (pc.iceGatheringState === 'complete') return
  await Promise.race([
    new Promise((resolve) => {
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') resolve()
      })
    }),
    sleep(GATHER_WAIT_MS)
  ])
}
