// The room's playback clock (docs/protocol.md, "Clock sync"; docs/media.md).

/** Where the lesson is at server time `serverNow`: the state extrapolated while playing. */
export function playheadAt (playback, serverNow, duration = null) {
  if (!playback) return 0
  let position = playback.position
  if (playback.status === 'playing' && serverNow > playback.at) {
    position += (serverNow - playback.at) * playback.rate
  }
  if (duration != null) position = Math.min(position, duration)
  return Math.max(0, position)
}

/** NTP-style: of a burst of (t0, t1, server_time) samples, the one with the least round trip. */
export function bestOffset (samples) {
  let best = null
  for (const s of samples) {
    const rtt = s.t1 - s.t0
    if (best === null || rtt < best.rtt) best = { rtt, offset: s.serverTime - (s.t0 + s.t1) / 2 }
  }
  return best
}
