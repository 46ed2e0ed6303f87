// Who is here: name, role, presence, connection quality, who presents, and during a live
// lesson who publishes it and who is on air in the teacher's earpiece.
import { colourFor, h } from './util.js'

const ROLE_LABELS = { coach: 'Coach', teacher: 'Teacher', observer: 'Observer', camera: 'Camera' }
const LINK_LABELS = { good: 'good connection', fair: 'slow connection', poor: 'poor connection', unknown: 'connection not measured yet' }

export function renderMembers (list, room) {
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
    return h('li', {
      class: `member status-${m.status} link-${link}` + (m.id === you ? ' you' : '') + (m.id === presenter ? ' presenter' : '') +
        (talking ? ' talking' : '') + (publishing ? ' publishing' : ''),
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
    talking ? h('span', { class: 'member-on-air', text: 'on air' }) : null)
  }))
}

function initials (name) {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('') || '?'
}
