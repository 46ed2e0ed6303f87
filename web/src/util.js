// Small DOM and formatting helpers shared by the session and admin pages.

/** Create an element: h('button', {class: 'x', onclick: f, 'aria-label': 'y'}, 'text', child) */
export function h (tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value)
    } else if (key === 'class') {
      el.className = value
    } else if (key === 'text') {
      el.textContent = value
    } else if (key === 'style' && typeof value === 'object') {
      for (const [name, v] of Object.entries(value)) {
        // A custom property (`--tag`) is set only by setProperty; assigning it does nothing.
        if (name.startsWith('--')) { if (v !== null && v !== undefined) el.style.setProperty(name, v) } else el.style[name] = v
      }
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value)
    } else if (key in el && typeof value !== 'string') {
      el[key] = value
    } else {
      el.setAttribute(key, value === true ? '' : String(value))
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue
    el.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return el
}

export const $ = (selector, root = document) => root.querySelector(selector)

/** "1:02:03", "12:03" or, with fps, "12:03.15" (frames). */
export function formatTime (seconds, fps = null) {
  if (!Number.isFinite(seconds) || seconds < 0) seconds = 0
  const whole = Math.floor(seconds + 1e-6)
  const hours = Math.floor(whole / 3600)
  const minutes = Math.floor((whole % 3600) / 60)
  const secs = whole % 60
  const two = (n) => String(n).padStart(2, '0')
  let text = hours > 0 ? `${hours}:${two(minutes)}:${two(secs)}` : `${minutes}:${two(secs)}`
  if (fps) text += '.' + two(Math.floor((seconds - whole) * fps + 0.001))
  return text
}

/** "1:02.25" (milliseconds kept, trailing zeros dropped), for a field a person may edit. */
export function preciseTime (seconds) {
  const total = Math.max(0, Math.round(seconds * 1000))
  const ms = total % 1000
  const tail = ms > 0 ? `.${String(ms).padStart(3, '0').replace(/0+$/, '')}` : ''
  return formatTime((total - ms) / 1000) + tail
}

/** "1:02.5", "62.5" or "1:01:02" -> seconds; NaN when it is not a time. */
export function parseTime (text) {
  const parts = String(text).trim().split(':')
  if (!parts.length || parts.length > 3 || parts.some((p) => !/^\d+(\.\d+)?$/.test(p))) return NaN
  return parts.reduce((total, part) => total * 60 + Number(part), 0)
}

/** A local clock in seconds: wall time that never jumps back (performance.now based). */
export const localNow = () => (performance.timeOrigin + performance.now()) / 1000

/** True when a key press belongs to a text field, not to the page's shortcuts. */
export function isTyping (target) {
  if (!(target instanceof Element)) return false
  if (target.closest('.cm-editor')) return true
  const tag = target.tagName
  if (tag === 'TEXTAREA' || tag === 'SELECT') return true
  if (tag === 'INPUT') {
    const type = (target.getAttribute('type') || 'text').toLowerCase()
    return !['range', 'button', 'checkbox', 'radio', 'submit', 'reset', 'file'].includes(type)
  }
  return target.isContentEditable
}

/** A stable colour for a person, from their user id. */
export function colourFor (id) {
  let hash = 0
  for (const char of String(id)) hash = (hash * 31 + char.charCodeAt(0)) >>> 0
  const hue = hash % 360
  return { color: `hsl(${hue} 65% 38%)`, light: `hsl(${hue} 70% 85% / 0.5)` }
}

/** A tiny event emitter: on(name, f) returns a function that removes f. */
export class Emitter {
  constructor () { this._handlers = new Map() }
  on (name, handler) {
    if (!this._handlers.has(name)) this._handlers.set(name, new Set())
    this._handlers.get(name).add(handler)
    return () => this._handlers.get(name)?.delete(handler)
  }

  emit (name, ...args) {
    for (const handler of [...(this._handlers.get(name) ?? [])]) {
      try { handler(...args) } catch (error) { console.error(error) }
    }
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** The JSON error a refusing server sent ({ code, message }; empty strings when it sent none). */
export async function errorOf (response) {
  try {
    const body = await response.json()
    return { code: body.error?.code ?? '', message: body.error?.message ?? '' }
  } catch { // not our JSON
    return { code: '', message: '' }
  }
}
