// The room protocol (docs/protocol.md): MessagePack maps over a WebSocket, with clock sync,
// automatic reconnects, and the close codes that mean "this link will not work".
import { decode, encode } from '@msgpack/msgpack'
import { bestOffset } from './clock.js'
import { Emitter, localNow, sleep } from './util.js'

// Close codes after which a retry with the same token cannot help.
export const FATAL_CLOSES = {
  4001: 'This link has no access token in it. Ask whoever invited you for the full link.',
  4002: 'This link is not valid for this server: it may be incomplete or from another server. Ask for a new invite link.',
  4003: 'This invite link has expired. Ask whoever invited you for a new one.',
  4004: 'This invite link is for another room. Ask for the link to this room.',
  4005: 'This invite link gives a role this server does not know. Ask for a new invite link.',
  4403: 'Your role may not open this part of the room.',
  4404: 'This room does not exist (any more). Check the link, or ask for a new one.'
}

const PING_BURST = 6
const RESYNC_EVERY_MS = 60_000
const PONG_TIMEOUT_MS = 3000

export class RoomConnection extends Emitter {
  constructor (base, room, token) {
    super()
    this.url = `${base.replace(/^http/, 'ws')}/rooms/${encodeURIComponent(room)}/ws?token=${encodeURIComponent(token)}`
    this.ws = null
    this.status = 'connecting' // connecting | open | lost | fatal
    this.welcomed = false
    this.you = null
    this.room = null
    this.permissions = new Set()
    this.members = new Map() // member id -> member
    this.playback = null
    this.live = null // the live lesson (docs/live.md), or null
    this.talkback = null // who is on air in the teacher's earpiece, or null
    this.talkMeasured = null // the room measures who talks when (never what): the page says so
    this.offset = 0 // server time = localNow() + offset
    this.rtt = null
    this._pending = new Map()
    this._pingSeq = 0
    this._attempt = 0
    this._retryAfter = null
    this._closedByUs = false
    this._resync = null
  }

  serverNow () { return localNow() + this.offset }

  connect () {
    this._closedByUs = false
    const ws = new WebSocket(this.url)
    ws.binaryType = 'arraybuffer'
    this.ws = ws
    ws.onmessage = (event) => {
      if (this.ws !== ws || !(event.data instanceof ArrayBuffer)) return
      let message
      try { message = decode(new Uint8Array(event.data)) } catch { return }
      if (message && typeof message === 'object') this._handle(message)
    }
    ws.onclose = (event) => {
      if (this.ws !== ws) return
      this.ws = null
      this.welcomed = false
      clearInterval(this._resync)
      for (const { reject } of this._pending.values()) reject(new Error('closed'))
      this._pending.clear()
      if (this._closedByUs) return
      if (FATAL_CLOSES[event.code]) {
        this._setStatus('fatal', { code: event.code, reason: event.reason, message: FATAL_CLOSES[event.code] })
        return
      }
      this._setStatus('lost', { code: event.code, reason: event.reason })
      const backoff = this._retryAfter ?? Math.min(10, 0.5 * 2 ** this._attempt)
      this._retryAfter = null
      this._attempt++
      setTimeout(() => { if (!this._closedByUs) this.connect() }, backoff * 1000)
    }
    if (this.status !== 'lost') this._setStatus('connecting')
  }

  close () {
    this._closedByUs = true
    clearInterval(this._resync)
    this.ws?.close(1000)
  }

  /** Send a client message; false if the room is not joined right now. */
  send (message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || (!this.welcomed && message.type !== 'ping')) return false
    this.ws.send(encode(message))
    return true
  }

  may (permission) { return this.permissions.has(permission) }

  memberName (id) { return this.members.get(id)?.name ?? null }

  _setStatus (status, detail = {}) {
    this.status = status
    this.emit('status', status, detail)
  }

  _handle (message) {
    switch (message.type) {
      case 'welcome':
        this.welcomed = true
        this._attempt = 0
        this.you = message.you
        this.room = message.room
        this.permissions = new Set(message.permissions)
        this.members = new Map(message.members.map((m) => [m.id, m]))
        this.playback = message.playback
        this.live = message.live ?? null
        this.talkback = message.talkback ?? null
        this.talkMeasured = typeof message.talk_measured === 'boolean' ? message.talk_measured : null
        this.offset = message.server_time - localNow() // rough, until the first burst
        this._setStatus('open')
        this.emit('welcome', message)
        this.emit('members')
        this.emit('playback', this.playback)
        this.emit('live', this.live, {})
        this.emit('talkback', this.talkback)
        this.syncClock()
        clearInterval(this._resync)
        this._resync = setInterval(() => this.syncClock(), RESYNC_EVERY_MS)
        break
      case 'member_joined':
      case 'member_updated':
        this.members.set(message.member.id, message.member)
        if (message.member.id === this.you?.id) this.you = message.member
        this.emit('members')
        break
      case 'member_left':
        this.members.delete(message.id)
        this.emit('members')
        break
      case 'state':
        this.members = new Map(message.members.map((m) => [m.id, m]))
        this.playback = message.playback
        this.live = message.live ?? null
        this.talkback = message.talkback ?? null
        this.emit('members')
        this.emit('playback', this.playback)
        this.emit('live', this.live, {})
        this.emit('talkback', this.talkback)
        break
      case 'live':
        this.live = message.live ?? null
        this.emit('live', this.live, { reason: message.reason ?? null, recording: message.recording ?? null })
        break
      case 'talkback':
        this.talkback = message.talkback ?? null
        this.emit('talkback', this.talkback)
        break
      case 'playback':
        this.playback = message.playback
        this.emit('playback', this.playback)
        break
      case 'pong': {
        const pending = this._pending.get(message.id)
        if (pending) {
          this._pending.delete(message.id)
          pending.resolve({ t0: message.t0, t1: localNow(), serverTime: message.server_time })
        }
        break
      }
      case 'error':
        this.emit('error', message)
        break
      case 'reconnect':
        this._retryAfter = Number(message.after) || 0.5
        break
      default:
        break // unknown types are ignored, as the protocol asks
    }
  }

  _ping () {
    const id = `c${++this._pingSeq}`
    return new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject })
      if (!this.send({ type: 'ping', id, t0: localNow() })) {
        this._pending.delete(id)
        reject(new Error('not connected'))
        return
      }
      setTimeout(() => {
        if (this._pending.delete(id)) reject(new Error('pong timeout'))
      }, PONG_TIMEOUT_MS)
    })
  }

  /** A burst of pings, one after the other; keeps the offset of the quickest round trip. */
  async syncClock () {
    const samples = []
    for (let i = 0; i < PING_BURST; i++) {
      try { samples.push(await this._ping()) } catch { break }
      await sleep(20)
    }
    const best = bestOffset(samples)
    if (best) {
      this.offset = best.offset
      this.rtt = best.rtt
      this.emit('clock', best)
    }
  }
}
