// The room's shared document (docs/documents.md) through a stock y-websocket provider.
//
// When the server refuses one of our updates it sends y-protocols' "permission denied"; every
// later update of this Y.Doc would be refused too, so we start a new Y.Doc and join again
// (nothing the room accepted is lost). Views listen for 'reset' and bind to the new document.
import * as authProtocol from 'y-protocols/auth'
import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'
import { FATAL_CLOSES } from './room.js'
import { Emitter } from './util.js'

const MESSAGE_QUERY_AWARENESS = 3
const MESSAGE_AUTH = 2
// y-websocket closes a connection that has heard nothing for 30 s. The server echoes our own
// awareness back, renewed every 15 s; asking for the awareness states now and then as well
// keeps the line alive through an older server that did not echo.
const KEEPALIVE_MS = 10_000

export class SharedDoc extends Emitter {
  constructor (base, room, token, user) {
    super()
    this.base = base.replace(/^http/, 'ws') + '/yjs'
    this.room = room
    this.token = token
    this.user = user // {name, sub, role, color, colorLight}
    this.doc = null
    this.provider = null
    this.status = 'connecting'
    this.synced = false
  }

  get plan () { return this.doc.getText('plan') }
  get timeline () { return this.doc.getMap('timeline') }
  get meta () { return this.doc.getMap('meta') }
  /** The room's lessons (video id -> {added, kind}): kept by the server, only read here. */
  get lessons () { return this.doc.getMap('lessons') }
  get awareness () { return this.provider.awareness }

  open () {
    const doc = new Y.Doc()
    const provider = new WebsocketProvider(this.base, this.room, doc, {
      params: { token: this.token },
      disableBc: true, // only the server may carry changes between clients: it judges them
      maxBackoffTime: 5000,
      shouldReconnect: (event) => !FATAL_CLOSES[event.code]
    })
    provider.messageHandlers[MESSAGE_AUTH] = (_encoder, decoder) => {
      authProtocol.readAuthMessage(decoder, doc, (_doc, reason) => this._denied(provider, reason))
    }
    provider.on('status', ({ status }) => {
      if (provider !== this.provider) return
      this.status = status
      this.emit('status', status)
    })
    provider.on('sync', (synced) => {
      if (provider !== this.provider) return
      this.synced = synced
      this.emit('sync', synced)
    })
    provider.on('closed', ({ code, reason }) => {
      if (provider !== this.provider) return
      this.status = 'fatal'
      this.emit('fatal', { code, reason, message: FATAL_CLOSES[code] ?? reason })
    })
    provider.awareness.setLocalStateField('user', this.user)
    this.doc = doc
    this.provider = provider
    clearInterval(this._keepalive)
    this._keepalive = setInterval(() => {
      const ws = provider.ws
      if (provider.wsconnected && ws?.readyState === WebSocket.OPEN) ws.send(new Uint8Array([MESSAGE_QUERY_AWARENESS]))
    }, KEEPALIVE_MS)
  }

  _denied (provider, reason) {
    if (provider !== this.provider) return
    this.emit('denied', reason)
    // Start over with a new document after the handler returns (we are inside its message).
    setTimeout(() => {
      if (provider === this.provider) this.reset()
    }, 0)
  }

  reset () {
    const oldProvider = this.provider
    const oldDoc = this.doc
    this.open()
    oldProvider?.destroy()
    oldDoc?.destroy()
    this.emit('reset')
  }

  /** Run `f` as one change (one update to the server). */
  transact (f) { this.doc.transact(f) }

  close () {
    clearInterval(this._keepalive)
    this.provider?.destroy()
    this.doc?.destroy()
  }
}

/** A plain value from the document: Y types become JSON. */
export function plain (value) {
  return value instanceof Y.AbstractType ? value.toJSON() : value
}
