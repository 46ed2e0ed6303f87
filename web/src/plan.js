// The shared plan: CodeMirror 6 bound to the document's `plan` (Y.Text) by y-codemirror.next,
// with everyone's cursor and name (awareness).
import { defaultKeymap } from '@codemirror/commands'
import { markdown } from '@codemirror/lang-markdown'
import { defaultHighlightStyle, syntaxHighlighting } from '@codemirror/language'
import { EditorState, Prec } from '@codemirror/state'
import { drawSelection, EditorView, highlightActiveLine, highlightSpecialChars, keymap, placeholder } from '@codemirror/view'
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next'
import * as Y from 'yjs'

export class PlanEditor {
  constructor (parent, { editable, onEscape, insertTime }) {
    this.parent = parent
    this.editable = editable
    this.onEscape = onEscape
    this.insertTime = insertTime
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
      }
    ]
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
          EditorView.lineWrapping,
          EditorState.readOnly.of(!this.editable),
          EditorView.editable.of(this.editable),
          EditorView.contentAttributes.of({ 'aria-label': 'The plan for the next lesson (Markdown)' }),
          placeholder(this.editable
            ? 'Write the next lesson’s plan together. Ctrl+Shift+M inserts the current moment.'
            : 'The plan for the next lesson appears here.'),
          yCollab(text, shared.awareness, { undoManager })
        ]
      })
    })
  }

  focus () { this.view?.focus() }

  text () { return this.view?.state.doc.toString() ?? '' }
}
