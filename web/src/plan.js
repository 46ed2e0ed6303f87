// The shared plan: CodeMirror 6 bound to the document's `plan` (Y.Text) by y-codemirror.next,
// with everyone's cursor and name (awareness). A moment written in it, `[12:03]` or `[1:02:03]`
// (Ctrl+Shift+M inserts the current one), is a link: a click on it, or Ctrl/Cmd+Enter with the
// cursor on it, moves the room there, as a note's time does.
import { defaultKeymap } from '@codemirror/commands'
import { markdown } from '@codemirror/lang-markdown'
import { defaultHighlightStyle, syntaxHighlighting } from '@codemirror/language'
import { EditorState, Prec } from '@codemirror/state'
import {
  Decoration, drawSelection, EditorView, highlightActiveLine, highlightSpecialChars, keymap, MatchDecorator,
  placeholder, ViewPlugin
} from '@codemirror/view'
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next'
import * as Y from 'yjs'
import { formatTime } from './util.js'

// [m:ss] or [h:mm:ss], as formatTime writes them (and a longer [75:10] typed by hand).
const MOMENT = /\[(\d{1,3}):(\d{2})(?::(\d{2}))?\]/g

/** The seconds a moment's match stands for, or null when it is not a time ([1:75]). */
export function momentSeconds (match) {
  const [a, b, c] = [match[1], match[2], match[3]].map((part) => (part === undefined ? null : Number(part)))
  if (c === null) return b < 60 ? a * 60 + b : null
  return b < 60 && c < 60 ? a * 3600 + b * 60 + c : null
}

/** The moment the position `pos` is in or touches (its seconds), or null. */
function momentAt (state, pos) {
  const line = state.doc.lineAt(pos)
  for (const match of line.text.matchAll(MOMENT)) {
    const from = line.from + match.index
    if (pos >= from && pos <= from + match[0].length) return momentSeconds(match)
  }
  return null
}

const moments = new MatchDecorator({
  regexp: MOMENT,
  decoration: (match) => {
    const seconds = momentSeconds(match)
    if (seconds === null) return null
    return Decoration.mark({
      class: 'cm-moment',
      attributes: {
        role: 'link',
        'data-seconds': String(seconds),
        title: `Move the room to ${formatTime(seconds)} (click, or Ctrl+Enter with the cursor on it)`
      }
    })
  }
})

const momentLinks = ViewPlugin.fromClass(class {
  constructor (view) { this.decorations = moments.createDeco(view) }
  update (update) { this.decorations = moments.updateDeco(update, this.decorations) }
}, { decorations: (plugin) => plugin.decorations })

export class PlanEditor {
  constructor (parent, { editable, onEscape, insertTime, seek }) {
    this.parent = parent
    this.editable = editable
    this.onEscape = onEscape
    this.insertTime = insertTime
    this.seek = seek // (seconds): the room's seek, as a note's time button uses
    this.view = null
  }

  /** (Re)bind to a document's plan and awareness; after a reset the old editor goes. */
  bind (shared) {
    this.view?.destroy()
    const text = shared.plan
    const undoManager = new Y.UndoManager(text)
    const keys = [
      { key: 'Escape', run: () => { this.onEscape(); return true } },
      {
        key: 'Mod-Shift-m',
        run: (view) => {
          const stamp = `[${this.insertTime()}] `
          view.dispatch(view.state.replaceSelection(stamp))
          return true
        }
      },
      {
        // Follow the moment under the cursor; elsewhere Mod-Enter does what it always does.
        key: 'Mod-Enter',
        run: (view) => {
          const seconds = momentAt(view.state, view.state.selection.main.head)
          if (seconds === null) return false
          this.seek(seconds)
          return true
        }
      }
    ]
    const follow = EditorView.domEventHandlers({
      click: (event, view) => {
        const link = event.target instanceof Element ? event.target.closest('.cm-moment') : null
        // A drag that selected text is not a click on the link.
        if (!link || event.button !== 0 || !view.state.selection.main.empty) return false
        this.seek(Number(link.dataset.seconds))
        return false // the cursor still goes there, so the moment can be edited too
      }
    })
    this.view = new EditorView({
      parent: this.parent,
      state: EditorState.create({
        doc: text.toString(),
        extensions: [
          Prec.high(keymap.of(keys)),
          keymap.of([...yUndoManagerKeymap, ...defaultKeymap]),
          highlightSpecialChars(),
          drawSelection(),
          highlightActiveLine(),
          syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
          markdown(),
          momentLinks,
          follow,
          EditorView.lineWrapping,
          EditorState.readOnly.of(!this.editable),
          EditorView.editable.of(this.editable),
          EditorView.contentAttributes.of({ 'aria-label': 'The plan for the next lesson (Markdown)' }),
          placeholder(this.editable
            ? 'Write the next lesson’s plan together. Ctrl+Shift+M inserts the current moment; click one to go there.'
            : 'The plan for the next lesson appears here.'),
          yCollab(text, shared.awareness, { undoManager })
        ]
      })
    })
  }

  focus () { this.view?.focus() }

  text () { return this.view?.state.doc.toString() ?? '' }
}
