// Who is here: name, role, presence, connection quality, who presents, and during a live
// lesson who publishes it and who is on air in the teacher's earpiece. In the conversation:
// who is speaking, whose microphone and camera are on, and (for the coach) a switch that lets
// an observer speak.
import { colourFor, h } from './util.js'

const ROLE_LABELS = { coach: 'Coach', teacher: 'Teacher', observer: 'Observer', camera: 'Camera' }
const LINK_LABELS = { good: 'good connection', fair: 'slow connection', poor: 'poor connection', unknown: 'connection not measured yet' }

const ICONS = {
  mic: '<svg viewBox="0 0 16 16" aria-hidden="true"><rect x="5.5" y="1.5" width="5" height="8" rx="2.5"/><path d="M3.5 7.5a4.5 4.5 0 0 0 9 0M8 12v2.5" fill="none" stroke="currentColor" stroke-width="1.4"/></svg>',
  camera: '<svg viewBox="0 0 16 16" aria-hidden="true"><rect x="1" y="4" width="10" height="8" rx="1.5"/><path d="M11 7l4-2.5v7L11 9z"/></svg>'
}

function icon (name, label) {
  const span = h('span', { class: `voice-icon voice-${name}`, role: 'img', 'aria-label': label, title: label })
  span.innerHTML = ICONS[name] // constant markup
  return span
}

export function renderMembers (list, room) {
  // The list is drawn again on every change (speaking flips often): keep the focus on the
  // switch it was on.
  const focused = list.contains(document.activeElement) ? document.activeElement.closest('[data-member]')?.dataset.member : null
  const you = room.you?.id
  const presenter = room.playback?.presenter
  const onAir = room.talkback?.user ?? null
  const publisher = room.live?.publisher ?? null
  const members = [...room.members.values()].sort((a, b) =>
    (a.id === you ? -1 : b.id === you ? 1 : 0) || a.name.localeCompare(b.name))
  list.replaceChildren(...members.map((m) => {
    const link = String(m.state?.link ?? 'unknown')
    const video = m.state?.video
    const details = [ROLE_LABELS[m.role] ?? m.role, m.status === 'here' ? null : m.status, LINK_LABELS[link] ?? link]
    if (video && video !== 'on') details.push(`video: ${video}`)
    if (m.id === presenter) details.push('presenting')
    const talking = onAir !== null && m.user === onAir
    const publishing = publisher !== null && m.user === publisher
    if (publishing) details.push(room.live.status === 'live' ? 'live' : 'connection lost')
    if (talking) details.push('on air: talking to the teacher')
    const voice = m.voice ?? {}
    const speaking = Boolean(voice.speaking)
    if (speaking) details.push('speaking')
    if (voice.mic) details.push('microphone on')
    if (voice.camera) details.push('camera on')
    const allow = room.may('allow_speak') && m.role === 'observer' && m.id !== you
    return h('li', {
      class: `member status-${m.status} link-${link}` + (m.id === you ? ' you' : '') + (m.id === presenter ? ' presenter' : '') +
        (talking ? ' talking' : '') + (publishing ? ' publishing' : '') + (speaking ? ' speaking' : '') +
        (voice.mic ? ' mic-on' : ''),
      dataset: { role: m.role, member: m.id },
      title: details.filter(Boolean).join(', ')
    },
    h('span', { class: 'avatar', style: { background: colourFor(m.user).color }, 'aria-hidden': 'true', text: initials(m.name) }),
    h('span', { class: 'member-name', text: m.id === you ? `${m.name} (you)` : m.name }),
    h('span', { class: 'role', text: ROLE_LABELS[m.role] ?? m.role }),
    h('span', { class: 'signal', 'aria-label': LINK_LABELS[link] ?? link, title: LINK_LABELS[link] ?? link }),
    m.status !== 'here' ? h('span', { class: 'away', text: m.status }) : null,
    m.id === presenter ? h('span', { class: 'presenting', text: 'presenting' }) : null,
    publishing ? h('span', { class: 'member-live', text: room.live.status === 'live' ? 'live' : 'lost' }) : null,
    talking ? h('span', { class: 'member-on-air', text: 'on air' }) : null,
    speaking ? h('span', { class: 'member-speaking', text: 'speaking' }) : null,
    voice.mic ? icon('mic', 'microphone on') : null,
    voice.camera ? icon('camera', 'camera on') : null,
    allow
      ? h('button', {
        type: 'button',
        class: 'allow-speak',
        'aria-pressed': String(Boolean(m.speak)),
        title: m.speak ? `Take back ${m.name}'s turn to speak: their microphone leaves the conversation` : `Let ${m.name} speak in the conversation`,
        text: m.speak ? 'May speak' : 'Allow to speak',
        onclick: () => room.send({ type: 'allow_speak', user: m.user, allowed: !m.speak })
      })
      : null)
  }))
  if (focused) list.querySelector(`[data-member="${CSS.escape(focused)}"] .allow-speak`)?.focus()
}

function initials (name) {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('') || '?'
}
