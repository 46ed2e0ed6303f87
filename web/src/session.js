// The session page at /r/{room}?token=… (or /r/{room} for a signed-in person): a coach and a
// teacher (and observers) watch the lesson in sync, write notes on its timeline and the next
// lesson's plan. docs/web.md describes it.
import './style.css'
import { ActionsPanel } from './actions.js'
import { playheadAt } from './clock.js'
import { SharedDoc } from './doc.js'
import { renderMembers } from './members.js'
import { PlanEditor } from './plan.js'
import { ClipMaker } from './clipmaker.js'
import { ConversationView } from './conversation.js'
import { LessonSwitcher, readLessons } from './lessons.js'
import { Earpiece, TalkBack } from './live.js'
import { startPublishPage } from './publish.js'
import { FATAL_CLOSES, RoomConnection } from './room.js'
import { TalkReport } from './talk.js'
import { TimelineView } from './timeline.js'
import { $, colourFor, errorOf, formatTime, h, isTyping } from './util.js'
import { hasWebRTC, LessonVideo } from './video.js'

const SEEK_STEP = 5
const SPEEDS = [0.25, 0.5, 0.75, 1, 1.25, 1.5, 2]
const HOLD_MS = 400 // talk-back held longer than this stops on release; shorter toggles

function tokenClaims (token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')
    return JSON.parse(decodeURIComponent(escape(atob(part))))
  } catch {
    return {}
  }
}

class Session {
  constructor () {
    const match = location.pathname.match(/^\/r\/([^/]+)/)
    this.roomId = match ? decodeURIComponent(match[1]) : ''
    // An invite link carries its token; a signed-in person's page asks the server for theirs
    // (start(), below), so no token is ever in the address after a sign-in.
    this.useToken(new URLSearchParams(location.search).get('token') ?? '')
    this.base = location.origin
    this.names = new Map() // user id -> display name, from everyone seen
    this.videoInfo = null // {duration, fps} when we may read the video's record
    this.videoId = null
    this.ready = false // reported ready to the room
    this.dragging = false
    this.lastQuality = null
    this.bound = false
    this.live = null // the live lesson while there is one (docs/live.md)
    this.ended = null // {recording}: a live lesson ended; its recording is being prepared
    this.talkbackHeld = null // {at, wasOn} while the talk-back button or key is down
    this.shownLesson = null // the lesson the page last showed notes of, to say when it changes
  }

  useToken (token) {
    this.token = token
    this.claims = tokenClaims(token)
    this.sub = String(this.claims.sub ?? '')
  }

  /** No token in the address: the signed-in person's own, from the server (their session
   * cookie, which this page never sees). False, with the page saying why, when there is none. */
  async tokenFromSignIn () {
    let response
    try {
      response = await fetch(`/api/rooms/${encodeURIComponent(this.roomId)}/token`, {
        method: 'POST',
        credentials: 'same-origin'
      })
    } catch {
      this.fatal('The server did not answer. Check the connection and reload the page.', 'This session did not open')
      return false
    }
    if (response.ok) {
      const { token } = await response.json()
      this.useToken(typeof token === 'string' ? token : '')
      if (!this.token) this.fatal('The server sent no token for this session.', 'This session did not open')
      return Boolean(this.token)
    }
    if (response.status === 401) this.fatal(FATAL_CLOSES[4001]) // not signed in: as before
    else if (response.status === 404) {
      this.fatal('You are not one of this session’s people, or it does not exist (any more). Your sessions are on your home page.', 'This session did not open')
    } else {
      const { message } = await errorOf(response)
      this.fatal(message || `The server said ${response.status}.`, 'This session did not open')
    }
    return false
  }

  async start () {
    if (!this.token) {
      if (!this.roomId) return this.fatal(FATAL_CLOSES[4001])
      if (!await this.tokenFromSignIn()) return
    }
    if (this.claims.role === 'camera' || location.hash === '#publish') return startPublishPage(this)
    document.title = `cocoach: ${this.roomId}`
    this.room = new RoomConnection(this.base, this.roomId, this.token)
    this.room.on('status', (status, detail) => this.onRoomStatus(status, detail))
    this.room.on('welcome', () => this.onWelcome())
    this.room.on('members', () => this.onMembers())
    this.room.on('playback', (playback) => this.onPlayback(playback))
    this.room.on('error', (error) => this.toast(error.message))
    this.room.on('clock', () => this.sendQuality())
    this.room.on('live', (live, change) => this.onLive(live, change))
    this.room.on('talkback', () => this.renderOnAir())
    this.room.connect()

    const colours = colourFor(this.sub)
    this.shared = new SharedDoc(this.base, this.roomId, this.token, {
      name: this.displayName() ?? 'Someone',
      sub: this.sub,
      role: String(this.claims.role ?? ''),
      color: colours.color,
      colorLight: colours.light
    })
    this.shared.on('status', () => this.updateBanner())
    this.shared.on('fatal', ({ code, message }) => this.fatal(message ?? FATAL_CLOSES[code]))
    this.shared.on('denied', (reason) => this.toast(`The room did not accept a change: ${reason}. The page reloaded the notes and plan.`))
    this.shared.on('reset', () => this.bindDocument())
    this.shared.open()

    this.video = new LessonVideo($('#lesson'), this.base, this.roomId, this.token)
    this.video.on('status', (status, detail) => this.onVideoStatus(status, detail))
    this.video.on('frames', () => this.reportReady())
    this.video.on('muted', () => { $('#unmute').hidden = false })
    this.talkBack = new TalkBack(this.base, this.roomId, this.token)
    this.talkBack.on('status', () => this.renderLiveControls())
    this.earpiece = new Earpiece($('#earpiece-audio'), this.base, this.roomId, this.token)
    this.earpiece.on('status', () => this.renderLiveControls())
    this.conversation = new ConversationView(this)
    this.talk = new TalkReport({
      roomId: this.roomId,
      token: this.token,
      sub: this.sub,
      nameOf: (sub) => this.nameOf(sub),
      seek: (t) => this.seek(t),
      changed: () => this.timeline?.schedule()
    }, $('#talk-report'))

    this.wireControls()
    this.renderExports()
    document.addEventListener('keydown', (event) => this.onKey(event))
    document.addEventListener('visibilitychange', () => this.sendPresence())
    document.addEventListener('keyup', (event) => this.onKeyUp(event))
    window.addEventListener('pagehide', () => {
      this.video.stop()
      this.talkBack.stop()
      this.earpiece.stop()
    })
    requestAnimationFrame(() => this.tick())
    window.cocoach = this // for the end-to-end tests and for curious IT staff
  }

  // ---- the room -----------------------------------------------------------------------

  onRoomStatus (status, detail) {
    if (status === 'fatal') this.fatal(detail.message)
    if (status === 'lost') this.ready = false // a new member after the reconnect
    this.updateBanner()
  }

  onWelcome () {
    const room = this.room
    document.body.classList.remove('loading')
    $('#room-title').textContent = room.room.title
    document.title = `${room.room.title} · cocoach`
    this.canControl = room.may('control_playback')
    this.canAnnotate = room.may('annotate')
    this.canEdit = room.may('edit')
    document.body.classList.toggle('can-control', this.canControl)
    if (!this.bound) {
      this.bound = true
      this.timeline = new TimelineView({
        shared: this.shared,
        canAnnotate: this.canAnnotate,
        sub: this.sub,
        authorName: this.displayName(),
        nameOf: (sub, written) => this.nameOf(sub, written),
        currentTime: () => this.currentTime(),
        seek: (t) => this.seek(t),
        duration: () => this.duration(),
        announce: (text) => this.announce(text),
        returnFocus: () => this.returnFocus(),
        onNotes: (notes) => this.renderScrubMarks(notes),
        talkLanes: (duration) => this.talk.lanes(duration),
        // The notes shown, and the lesson a new note is made on: the one on screen.
        lesson: () => this.currentLesson()
      }, {
        list: $('#timeline-list'),
        composer: $('#composer'),
        lanes: $('#lanes'),
        empty: $('#timeline-empty')
      })
      this.plan = new PlanEditor($('#plan-editor'), {
        editable: this.canEdit,
        onEscape: () => this.returnFocus(),
        insertTime: () => formatTime(this.currentTime()),
        seek: (t) => this.seek(t) // a moment link: as a note's time does
      })
      this.actions = new ActionsPanel({
        shared: this.shared,
        sub: this.sub,
        authorName: this.displayName(),
        canEdit: this.canEdit,
        inCycle: Boolean(room.room.cycle),
        lesson: () => this.currentLesson(),
        seek: (t) => this.seek(t),
        showLesson: (video) => this.showLesson(video),
        nameOf: (sub, written) => this.nameOf(sub, written),
        toast: (text) => this.toast(text)
      }, $('#actions'))
      if (room.room.cycle) this.loadCycle(room.room.cycle)
      this.lessons = new LessonSwitcher($('#lessons'), {
        token: this.token,
        canChoose: this.canEdit,
        current: () => this.currentLesson(),
        live: () => Boolean(this.live),
        choose: (video) => this.showLesson(video)
      })
      this.clips = new ClipMaker({
        roomId: this.roomId,
        token: this.token,
        timeline: this.timeline,
        currentTime: () => this.currentTime(),
        duration: () => this.duration(),
        lesson: () => this.currentLesson() ?? this.room.playback?.video ?? null
      }, { button: $('#make-clip'), dialog: $('#clip-dialog') })
      this.bindDocument()
      this.goToLinkedMoment()
      this.video.source = room.live ? 'live' : null
      if (hasWebRTC()) this.video.start()
      else this.onVideoStatus('unsupported')
    } else if (this.video.framesShown) {
      this.reportReady()
    }
    this.sendPresence()
    this.sendQuality(true)
    this.conversation.onWelcome()
    const role = room.you?.role
    this.talk.start(role === 'coach' || role === 'teacher')
  }

  bindDocument () {
    if (!this.timeline) return
    this.timeline.bind()
    this.plan.bind(this.shared)
    this.actions.bind()
    // meta.video changes when a live lesson's recording takes over, or when someone chooses
    // another lesson: watch that one, with its notes.
    this.shared.meta.observe((event) => {
      if (event.keysChanged.has('video')) this.onLessonChanged()
    })
    const lessons = this.shared.lessons
    lessons.observe(() => this.lessons.update(readLessons(lessons)))
    this.lessons.update(readLessons(lessons))
    this.onLessonChanged()
    const awareness = this.shared.awareness
    awareness.on('change', () => {
      for (const state of awareness.getStates().values()) {
        if (state.user?.sub && state.user?.name) this.names.set(state.user.sub, state.user.name)
      }
    })
    this.updateBanner()
  }

  onMembers () {
    for (const m of this.room.members.values()) this.names.set(m.user, m.name)
    this.onPlayback(this.room.playback) // names in "who controls" change with the members
    this.timeline?.schedule()
    this.conversation.onMembers()
  }

  /** Our name from the token, what our notes carry as `authorName`. */
  displayName () {
    const name = this.claims.name
    return typeof name === 'string' && name.trim() ? name.trim() : null
  }

  /** A person's name: the one `written` with their note (right after they left, too), else
   * the name they go by here (members, cursors), else their id. */
  nameOf (sub, written = null) {
    const name = written || this.names.get(sub)
    if (sub === this.sub) return `${name ?? this.displayName() ?? 'You'} (you)`
    return name ?? String(sub).replace(/^user:/, '')
  }

  /** A session of a coaching cycle: a link to the cycle's page, and the notes of its earlier
   * sessions that the action steps cite (for a signed-in person; an invite link reads none). */
  async loadCycle (cycleId) {
    try {
      const response = await fetch(`/api/cycles/${encodeURIComponent(cycleId)}`, { credentials: 'same-origin' })
      if (!response.ok) return
      const cycle = await response.json()
      this.actions.setCited(cycle.evidence)
      const link = h('a', { class: 'cycle-link', href: `/c/${encodeURIComponent(cycleId)}`, text: `Cycle: ${cycle.focus}` })
      $('#room-title').after(link)
    } catch { /* the session works without it */ }
  }

  /** `#at=SECONDS&lesson=VIDEO` (a piece of evidence on the cycle's page): once the document is
   * here, show that lesson and go to that moment, for everyone, as a click on the note would. */
  goToLinkedMoment () {
    const params = new URLSearchParams(location.hash.slice(1))
    const at = Number(params.get('at'))
    if (!params.has('at') || !Number.isFinite(at) || at < 0) return
    const lesson = params.get('lesson') || null
    history.replaceState(null, '', location.pathname + location.search)
    const deadline = Date.now() + 15_000
    const go = () => {
      if (Date.now() > deadline) return this.toast(`Go to ${formatTime(at)} to see the moment you followed.`)
      if (!this.shared.synced || !this.room.playback) return setTimeout(go, 200)
      if (lesson && this.currentLesson() !== lesson) {
        this.showLesson(lesson)
        if (this.room.playback.video !== lesson) return setTimeout(go, 200)
      }
      if (lesson && this.room.playback.video !== lesson) return setTimeout(go, 200)
      this.seek(at)
    }
    go()
  }

  memberName (id) {
    if (!id) return null
    if (id === this.room.you?.id) return 'you'
    return this.room.memberName(id) ?? 'someone who has left'
  }

  // ---- lessons ------------------------------------------------------------------------

  /** The lesson on screen, whose notes the page shows and a new note is made on: during a live
   * lesson its recording; just after one, the recording until the room names it; else
   * meta.video. Null in a room with no video (then every note is shown). */
  currentLesson () {
    const meta = this.shared?.meta.get('video')
    return this.live?.recording ?? this.ended?.recording ?? (typeof meta === 'string' && meta ? meta : null)
  }

  /** Show `video` (one of the room's lessons) to everyone: the room's rules attach it when the
   * pages ask for it, and every page reconnects to it (onLessonChanged). Needs `edit`. */
  showLesson (video) {
    if (!this.canEdit || this.live || !video) return
    if (this.shared.meta.get('video') !== video) this.shared.meta.set('video', video)
  }

  onLessonChanged () {
    const video = this.shared.meta.get('video')
    // Someone chose another lesson while a recording was being prepared: that one is shown now.
    if (this.ended && video && video !== this.ended.recording) {
      this.ended = null
      this.renderStageMessage()
    }
    this.renderLessons()
    if (!this.live && video && video !== this.videoId && this.video.status !== 'idle' && this.video.status !== 'unsupported') {
      this.video.connect()
    }
  }

  /** Everything that depends on the lesson on screen: its notes, the switcher, the exports. */
  renderLessons () {
    const lesson = this.currentLesson()
    this.renderClipButton()
    this.timeline?.schedule()
    this.lessons?.render()
    this.renderExports()
    if (lesson !== this.shownLesson) {
      if (this.shownLesson && lesson && this.lessons?.lessons.length >= 2 && !this.live) {
        this.toast(`The room shows “${this.lessons.label(lesson)}” now, with its own notes.`)
      }
      this.shownLesson = lesson
    }
  }

  /** "Make a clip": for a coach or teacher while a recorded lesson is on screen, not a clip's
   * own media (a clip's rooms); the server says whether the lesson is theirs. */
  renderClipButton () {
    const role = String(this.claims.role ?? '')
    const lesson = this.currentLesson() ?? this.room?.playback?.video ?? null
    this.clips?.show((role === 'coach' || role === 'teacher') && Boolean(lesson) && !this.live && !this.ended &&
      !this.videoInfo?.clipOf)
  }

  // ---- playback -----------------------------------------------------------------------

  onPlayback (playback) {
    if (!playback) return
    renderMembers($('#members'), this.room) // shows who presents
    if (playback.video && playback.video !== this.videoId) {
      const first = this.videoId === null
      this.videoId = playback.video
      this.loadVideoInfo(playback.video)
      // The room moved to another video: watch that one (the first is asked for at start).
      if (!first && this.video.status !== 'idle' && this.video.status !== 'unsupported') this.video.connect()
    }
    this.renderClipButton()
    const you = this.room.you?.id
    const presenter = playback.presenter
    const blocked = presenter && presenter !== you
    const mayControl = this.canControl && !blocked && !this.live
    const playing = playback.status === 'playing'
    const play = $('#play')
    play.textContent = playing ? 'Pause' : 'Play'
    play.classList.toggle('playing', playing)
    play.setAttribute('aria-label', playing ? 'Pause for everyone' : 'Play for everyone')
    play.disabled = !mayControl
    $('#scrubber').disabled = !mayControl
    $('#speed').disabled = !mayControl
    $('#speed').value = String(SPEEDS.find((s) => Math.abs(s - playback.rate) < 1e-6) ?? 1)
    $('#step-back').disabled = !mayControl || playback.status !== 'paused' || !this.videoId
    $('#step-forward').disabled = $('#step-back').disabled
    const lock = $('#lock')
    lock.hidden = !this.canControl
    lock.disabled = Boolean(blocked) || Boolean(this.live)
    lock.setAttribute('aria-pressed', String(presenter === you && Boolean(you)))
    lock.textContent = presenter === you && you ? 'Stop presenting' : 'Present'
    document.body.dataset.playback = playback.status

    const parts = []
    if (presenter) {
      parts.push(presenter === you
        ? 'You are presenting: only you control the lesson.'
        : `${this.memberName(presenter)} is presenting: only they control the lesson.`)
    } else {
      const controllers = [...this.room.members.values()]
        .filter((m) => m.role === 'coach' || m.role === 'teacher')
        .map((m) => (m.id === you ? 'you' : m.name))
      const who = joinNames(controllers)
      parts.push(controllers.length ? `${who[0].toUpperCase()}${who.slice(1)} can control the lesson.` : '')
    }
    if (playback.status === 'waiting') {
      const names = playback.waiting_for.map((id) => this.memberName(id))
      parts.push(`Waiting for ${joinNames(names)} to catch up…`)
    } else if (playback.by) {
      const who = this.memberName(playback.by)
      parts.push(playing ? `Playing (${who} pressed play).` : `Paused by ${who}.`)
    }
    if (!this.canControl) parts.push('You watch along; the coach and teacher control the lesson.')
    $('#who-controls').textContent = this.live
      ? `Live from ${this.live.name}: everyone sees the classroom as it happens. Notes are placed at the recording's time.`
      : parts.filter(Boolean).join(' ')
    if (this.ended && playback.video === this.ended.recording) {
      this.ended = null // the recording is the room's video now: the recorded-lesson view
      this.renderStageMessage()
      this.renderLessons()
    }
    const cue = $('#cue-text')
    cue.textContent = playback.status === 'waiting'
      ? 'Everyone waits here together'
      : playing ? 'Playing for everyone in the room' : 'Everyone in the room sees this moment'
  }

  async loadVideoInfo (videoId) {
    try {
      const response = await fetch(`/api/videos/${encodeURIComponent(videoId)}`, {
        headers: { Authorization: `Bearer ${this.token}` }
      })
      if (!response.ok) return // observers may not read the library: no scrubber length
      const record = await response.json()
      if (videoId !== this.videoId) return
      this.videoInfo = { duration: record.duration, fps: record.fps, title: record.title, clipOf: record.clip_of ?? null }
      this.renderClipButton() // a clip's own media is not clipped again
      this.lessons?.setTitle(videoId, record.title)
      $('#time-total').textContent = record.duration ? formatTime(record.duration) : '–'
      this.timeline?.schedule()
    } catch { /* shown without a length */ }
  }

  duration () {
    if (this.videoInfo?.duration && !this.live) return this.videoInfo.duration
    const marks = (this.timeline?.notes ?? []).map((n) => n.end ?? n.start)
    return Math.max(60, this.currentTime() + 10, ...marks.map((m) => m + 10))
  }

  currentTime () {
    if (this.live) return this.liveTime()
    const duration = this.videoInfo?.duration ?? null
    return playheadAt(this.room?.playback, this.room?.serverNow() ?? 0, duration)
  }

  /** Recording time during a live lesson: what a note made now is placed at (docs/live.md). */
  liveTime () {
    const at = this.live?.recording_started_at
    return at == null ? 0 : Math.max(0, (this.room?.serverNow() ?? 0) - at)
  }

  tick () {
    // Runs every animation frame: the page is written only where something changed, or the
    // browser would lay out and paint it 60 times a second on a school laptop for nothing.
    const now = this.currentTime()
    const fps = this.live ? null : this.videoInfo?.fps ?? null
    const shown = formatTime(now, fps)
    const timeNow = $('#time-now')
    if (timeNow.textContent !== shown) timeNow.textContent = shown
    const total = this.live ? 'live' : this.videoInfo?.duration ? formatTime(this.videoInfo.duration) : '–'
    if ($('#time-total').textContent !== total) $('#time-total').textContent = total
    const scrubber = $('#scrubber')
    const duration = this.duration()
    if (Number(scrubber.max) !== duration) scrubber.max = String(duration)
    const value = String(Math.round(now * 20) / 20) // 50 ms: finer than a pixel of the bar
    if (!this.dragging && document.activeElement !== scrubber && scrubber.value !== value) scrubber.value = value
    const spoken = formatTime(now)
    if (scrubber.getAttribute('aria-valuetext') !== spoken) scrubber.setAttribute('aria-valuetext', spoken)
    requestAnimationFrame(() => this.tick())
  }

  intent (message) {
    if (!this.room.send(message)) this.toast('Not connected to the room right now; try again in a moment.')
  }

  togglePlay () {
    const status = this.room.playback?.status
    this.intent({ type: status === 'playing' || status === 'waiting' ? 'pause' : 'play' })
  }

  seek (position) {
    if (!this.canControl) return this.toast(`The coach or the teacher moves the lesson; ask them to go to ${formatTime(position)}.`)
    if (this.live) return this.toast('During a live lesson everyone sees the classroom as it happens; the recording can be gone through afterwards.')
    this.intent({ type: 'seek', position: Math.max(0, Math.min(position, this.videoInfo?.duration ?? Infinity)) })
  }

  step (frames) {
    if (this.room.playback?.status !== 'paused') return this.toast('Pause first to step by frames.')
    this.intent({ type: 'step', frames })
  }

  speed (direction) {
    const index = SPEEDS.findIndex((s) => Math.abs(s - (this.room.playback?.rate ?? 1)) < 1e-6)
    const next = SPEEDS[Math.max(0, Math.min(SPEEDS.length - 1, (index < 0 ? 3 : index) + direction))]
    this.intent({ type: 'rate', rate: next })
  }

  wireControls () {
    $('#play').addEventListener('click', () => this.togglePlay())
    $('#step-back').addEventListener('click', () => this.step(-1))
    $('#step-forward').addEventListener('click', () => this.step(1))
    $('#speed').addEventListener('change', (event) => this.intent({ type: 'rate', rate: Number(event.target.value) }))
    $('#lock').addEventListener('click', () => {
      const mine = this.room.playback?.presenter === this.room.you?.id
      this.intent({ type: 'lock', locked: !mine })
    })
    const scrubber = $('#scrubber')
    scrubber.addEventListener('pointerdown', () => { this.dragging = true })
    scrubber.addEventListener('input', () => { $('#time-now').textContent = formatTime(Number(scrubber.value)) })
    scrubber.addEventListener('change', () => {
      this.dragging = false
      this.seek(Number(scrubber.value))
    })
    $('#unmute').addEventListener('click', () => {
      const video = $('#lesson')
      video.muted = false
      video.play().catch(() => {})
      $('#unmute').hidden = true
    })
    $('#help-button').addEventListener('click', () => $('#help').showModal())

    const talk = $('#talkback')
    let pointer = false // the click after a pointer press is not a toggle
    talk.addEventListener('pointerdown', (event) => {
      if (event.button !== 0) return
      pointer = true
      talk.setPointerCapture?.(event.pointerId)
      this.talkbackDown()
    })
    talk.addEventListener('pointerup', () => this.talkbackUp())
    talk.addEventListener('pointercancel', () => this.talkbackUp())
    talk.addEventListener('click', () => {
      if (pointer) { pointer = false; return }
      this.toggleTalkback() // Enter or Space on the focused button
    })
    talk.addEventListener('contextmenu', (event) => event.preventDefault()) // long press on a tablet
    $('#earpiece').addEventListener('click', () => this.toggleEarpiece())
  }

  renderScrubMarks (notes) {
    const duration = this.duration()
    $('#scrub-marks').replaceChildren(...notes.map((n) => h('span', {
      class: 'scrub-mark' + (n.end != null ? ' range' : ''),
      style: {
        left: `${Math.min(100, (n.start / duration) * 100)}%`,
        width: n.end != null ? `${Math.max(0.4, ((n.end - n.start) / duration) * 100)}%` : null,
        background: this.timeline.colourOf(n)
      }
    })))
  }

  // ---- the video ----------------------------------------------------------------------

  onVideoStatus (status, detail = '') {
    this.videoStatus = status
    this.videoDetail = detail
    this.renderStageMessage()
    document.body.dataset.video = status
    if ((status === 'lost' || status === 'connecting') && this.ready) {
      this.ready = false
      this.room.send({ type: 'buffering' })
    }
    this.sendQuality()
  }

  /** The words over the video: the live lesson's state first, then the video connection's. */
  renderStageMessage () {
    const message = $('#stage-message')
    const status = this.videoStatus ?? 'idle'
    const detail = this.videoDetail ?? ''
    const texts = {
      unsupported: 'This browser cannot play the lesson video: it has no WebRTC. You can still write notes and the plan here. To watch, open this link in a current Chrome, Edge, Firefox or Safari.',
      connecting: this.video.framesShown ? '' : 'Connecting to the lesson video…',
      'no-video': noVideoText(detail),
      lost: `The video connection dropped. Reconnecting… ${detail}`.trim(),
      refused: `The lesson video is not available to you: ${detail}`
    }
    let text = texts[status] ?? ''
    let soft = false // a band over the picture rather than a curtain: the last picture stays
    if (this.live?.status === 'interrupted') {
      text = 'Connection to the classroom lost — waiting for it to come back.'
      soft = true
    } else if (this.live) {
      if (status === 'connecting' && !this.video.framesShown) text = `Connecting to the live lesson from ${this.live.name}…`
      else if (status === 'no-video') text = `Waiting for the picture from ${this.live.name}…`
      else if (status === 'connected' && !this.video.framesShown) text = `Waiting for the picture from ${this.live.name}…`
    } else if (this.ended && (status === 'no-video' || status === 'connecting' || !this.video.framesShown)) {
      text = 'The live lesson has ended. The recording is being prepared; it appears here by itself when it is ready, with the notes in place.'
    }
    if (status === 'connected' && this.video.framesShown && !soft) text = ''
    message.textContent = text
    message.hidden = !text
    message.classList.toggle('soft', soft)
  }

  reportReady () {
    this.renderStageMessage()
    if (!this.ready && this.room.send({ type: 'ready' })) this.ready = true
    this.sendQuality()
  }

  // ---- the live lesson ------------------------------------------------------------------

  onLive (live, change = {}) {
    const was = this.live
    this.live = live
    if (live) this.ended = null
    else if (change.recording || (was && was.recording)) this.ended = { recording: change.recording ?? was.recording }
    document.body.dataset.live = live ? live.status : 'no'
    $('#live-badge').hidden = !live
    $('#live-name').textContent = live ? `· ${live.name}` : ''
    $('#live-badge').classList.toggle('interrupted', live?.status === 'interrupted')
    if (this.bound && hasWebRTC()) this.video.watch(live ? 'live' : null)
    if (!live) {
      this.talkBack.stop()
      this.earpiece.stop()
      if (was) this.toast(`The live lesson has ended${change.reason ? ` (${change.reason})` : ''}. The recording is being prepared.`)
    }
    this.renderStageMessage()
    this.renderLiveControls()
    this.renderOnAir()
    if (this.room.playback) this.onPlayback(this.room.playback)
    if (this.bound) this.renderLessons() // live, its recording's notes; after, the lesson's
  }

  /** "Cora is talking to the teacher", for everyone in the room while talk-back is on air. */
  renderOnAir () {
    const talkback = this.room?.talkback
    const bar = $('#on-air')
    let text = ''
    if (talkback) {
      if (talkback.user === this.sub) text = 'You are on air: the teacher hears you in the earpiece.'
      else if (this.room.may('hear_talkback')) text = `${talkback.name} is talking to you (the earpiece).`
      else text = `${talkback.name} is talking to the teacher.`
    }
    bar.textContent = text
    bar.hidden = !text
    document.body.dataset.onAir = talkback ? 'yes' : 'no'
    if (this.room?.welcomed) renderMembers($('#members'), this.room)
  }

  renderLiveControls () {
    const live = Boolean(this.live)
    const mayTalk = live && Boolean(this.room?.may('talkback'))
    const mayHear = live && Boolean(this.room?.may('hear_talkback'))
    $('#live-controls').hidden = !mayTalk && !mayHear
    const talk = $('#talkback')
    talk.hidden = !mayTalk
    const talking = this.talkBack.wanted
    talk.setAttribute('aria-pressed', String(talking))
    talk.classList.toggle('on-air', this.talkBack.status === 'on')
    talk.textContent = this.talkBack.status === 'on'
      ? 'On air: release or press to stop'
      : talking ? 'Connecting the microphone…' : 'Hold to talk to the teacher'
    const ear = $('#earpiece')
    ear.hidden = !mayHear
    ear.setAttribute('aria-pressed', String(this.earpiece.wanted))
    ear.textContent = this.earpiece.status === 'on' ? 'Earpiece: on' : this.earpiece.wanted ? 'Earpiece: connecting…' : 'Earpiece: off'
    const problems = [this.talkBack, this.earpiece].filter((s) => s.status === 'error')
    $('#live-status').textContent = problems.length ? problems.map((p) => p.lastDetail).join(' ') : ''
  }

  /** Talk-back pressed (button or V): on now; what the release does depends on how long. */
  talkbackDown () {
    if (!this.live || !this.room.may('talkback') || this.talkbackHeld) return
    this.talkbackHeld = { at: performance.now(), wasOn: this.talkBack.wanted }
    if (!this.talkBack.wanted) this.talkBack.start()
  }

  /** Released: a hold ends talking; a short press leaves it on (or turns it off if it was on). */
  talkbackUp () {
    const held = this.talkbackHeld
    if (!held) return
    this.talkbackHeld = null
    if (held.wasOn || performance.now() - held.at > HOLD_MS) this.talkBack.stop()
  }

  toggleTalkback () {
    if (this.talkBack.wanted) this.talkBack.stop()
    else if (this.live && this.room.may('talkback')) this.talkBack.start()
  }

  toggleEarpiece () {
    if (this.earpiece.wanted) this.earpiece.stop()
    else if (this.live && this.room.may('hear_talkback')) this.earpiece.start()
  }

  // ---- presence -----------------------------------------------------------------------

  sendPresence () {
    this.room?.send({ type: 'presence', status: document.hidden ? 'away' : 'here' })
  }

  /** Our connection quality, shown beside our name to the others. */
  sendQuality (force = false) {
    if (!this.room?.welcomed) return
    const rtt = this.room.rtt
    const link = rtt == null ? 'unknown' : rtt < 0.15 ? 'good' : rtt < 0.4 ? 'fair' : 'poor'
    const video = this.video?.framesShown && this.video.status === 'connected' ? 'on' : this.video?.status ?? 'idle'
    const state = { link, video, rtt_ms: rtt == null ? null : Math.round(rtt * 1000) }
    const key = `${link}|${video}`
    if (!force && key === this.lastQuality) return
    this.lastQuality = key
    this.room.send({ type: 'presence', state })
  }

  // ---- messages -----------------------------------------------------------------------

  updateBanner () {
    const banner = $('#banner')
    const roomLost = this.room?.status === 'lost' || (this.room?.status === 'connecting' && this.bound)
    const docLost = this.shared?.status === 'disconnected' && this.bound
    let text = ''
    if (roomLost || docLost) {
      text = 'Connection lost. Reconnecting… What you type is kept and sent when the connection is back.'
    }
    banner.textContent = text
    banner.hidden = !text
    document.body.dataset.connection = text ? 'lost' : 'ok'
  }

  fatal (text, title = 'This link does not work') {
    this.room?.close()
    this.shared?.close()
    this.video?.stop()
    this.conversation?.leave()
    this.talk?.stop()
    $('#fatal-title').textContent = title
    $('#fatal-text').textContent = text
    $('#fatal').hidden = false
    document.body.classList.remove('loading')
    document.body.dataset.connection = 'fatal'
  }

  toast (text) {
    const toast = h('div', { class: 'toast', role: 'status', text })
    document.body.append(toast)
    setTimeout(() => toast.remove(), 6000)
  }

  announce (text) { this.toast(text) }

  /** Captions and the summary are of one lesson: the one on screen. The spreadsheet, JSON and
   * Web Annotations hold the whole room, every note naming its lesson. */
  renderExports () {
    const q = `?token=${encodeURIComponent(this.token)}`
    const lesson = this.currentLesson()
    const one = lesson ? `${q}&video=${encodeURIComponent(lesson)}` : q
    const room = `/api/rooms/${encodeURIComponent(this.roomId)}`
    const base = `${room}/export`
    const key = `${lesson}`
    if (this._exportsKey === key) return
    this._exportsKey = key
    $('#exports').replaceChildren(
      h('p', { class: 'export-heading', text: 'This lesson' }),
      h('a', { href: `${base}.vtt${one}`, download: '', text: 'Notes as captions (WebVTT)' }),
      h('a', { href: `${room}/summary${one}`, download: `cocoach-${this.roomId}-summary.json`, text: 'Notes per tag and minute (JSON)' }),
      h('p', { class: 'export-heading', text: 'The whole room, every lesson' }),
      h('a', { href: `${base}.csv${q}`, download: '', text: 'Notes as a spreadsheet (CSV)' }),
      h('a', { href: `${base}.json${q}`, download: '', text: 'Plan and notes (JSON)' }),
      h('a', { href: `${base}.jsonld${q}`, download: '', text: 'Web Annotations (JSON-LD)' })
    )
  }

  // ---- keyboard -----------------------------------------------------------------------

  returnFocus () {
    if (document.activeElement instanceof HTMLElement) document.activeElement.blur()
    $('.watch').focus({ preventScroll: true })
  }

  onKey (event) {
    if (event.defaultPrevented || !this.bound || $('#help').open || $('#clip-dialog').open) return
    if (isTyping(event.target)) return
    if (this.timeline.handleKey(event)) {
      event.preventDefault()
      return
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return
    const onButton = event.target instanceof HTMLButtonElement || event.target instanceof HTMLAnchorElement ||
      event.target instanceof HTMLInputElement
    const control = this.canControl && !this.live // a live lesson is not played, paused or seeked
    const keys = {
      ' ': () => control && !onButton && this.togglePlay(),
      k: () => control && this.togglePlay(),
      ArrowLeft: () => control && event.target.id !== 'scrubber' && this.seek(this.currentTime() - SEEK_STEP),
      ArrowRight: () => control && event.target.id !== 'scrubber' && this.seek(this.currentTime() + SEEK_STEP),
      ',': () => control && this.step(-1),
      '.': () => control && this.step(1),
      '<': () => control && this.speed(-1),
      '>': () => control && this.speed(1),
      v: () => {
        if (!this.live || !this.room.may('talkback')) return false
        if (!event.repeat) this.talkbackDown()
      },
      e: () => this.live && this.room.may('hear_talkback') ? this.toggleEarpiece() : false,
      m: () => this.conversation.keyDown(event),
      p: () => this.plan.focus(),
      t: () => $('#timeline-list').focus(),
      '?': () => $('#help').showModal()
    }
    const action = keys[event.key.length === 1 ? event.key.toLowerCase() : event.key] ?? keys[event.key]
    if (action && action() !== false) event.preventDefault()
  }

  onKeyUp (event) {
    if ((event.key === 'm' || event.key === 'M') && this.conversation.keyUp()) event.preventDefault()
    if ((event.key === 'v' || event.key === 'V') && this.talkbackHeld) {
      event.preventDefault()
      this.talkbackUp()
    }
  }
}

/** The server's 409 no_video message, said for teachers rather than for engineers. */
function noVideoText (detail) {
  const progress = detail.match(/not ready yet \((\w+), (\d+)% ingested\)/)
  if (progress) {
    const how = progress[1] === 'ingesting' ? `${progress[2]}% done` : 'waiting its turn'
    return `The lesson video is still being prepared (${how}). It appears here by itself when it is ready.`
  }
  if (/does not exist/.test(detail)) return 'This room’s lesson video has been deleted. Notes and the plan still work.'
  if (/consent for it is not recorded/.test(detail)) {
    return 'This lesson video is kept but not shown until the school records consent for it (on the admin page). It appears here by itself then; notes and the plan work already.'
  }
  return 'No lesson video in this room yet. Whoever runs the server can add one on the admin page; notes and the plan work already.'
}

function joinNames (names) {
  if (names.length <= 1) return names.join('')
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`
}

new Session().start()
