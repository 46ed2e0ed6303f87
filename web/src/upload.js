// A lesson video uploaded with tus 1.0.0 (docs/videos.md): POST /api/videos with the length and
// metadata, then PATCH in 8 MiB chunks; an interrupted chunk asks HEAD for the offset and
// resumes there. Shared by the admin page (the admin key as Authorization) and the home page
// (the session cookie, which a same-origin request carries by itself: no Authorization).
import { errorOf, sleep } from './util.js'

const CHUNK = 8 * 1024 * 1024
const TUS = '1.0.0'

const b64 = (text) => btoa(unescape(encodeURIComponent(text)))

async function request (url, headers, options) {
  const response = await fetch(url, {
    credentials: 'same-origin',
    ...options,
    headers: { ...headers, 'Tus-Resumable': TUS, ...(options.headers ?? {}) }
  })
  if (!response.ok) {
    const { message } = await errorOf(response)
    const error = new Error(message || `${response.status} ${response.statusText}`)
    error.status = response.status
    throw error
  }
  return response
}

function patch (url, headers, offset, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('PATCH', url)
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value)
    xhr.setRequestHeader('Tus-Resumable', TUS)
    xhr.setRequestHeader('Upload-Offset', String(offset))
    xhr.setRequestHeader('Content-Type', 'application/offset+octet-stream')
    xhr.upload.onprogress = (event) => onProgress(offset + event.loaded)
    xhr.onload = () => {
      if (xhr.status === 204) resolve(Number(xhr.getResponseHeader('Upload-Offset')))
      else {
        let message = `${xhr.status}`
        try { message = JSON.parse(xhr.responseText).error.message } catch { /* not JSON */ }
        const error = new Error(message)
        error.status = xhr.status
        reject(error)
      }
    }
    xhr.onerror = () => reject(new Error('the connection dropped'))
    xhr.send(blob)
  })
}

/**
 * Upload `file` with its title and consent. `headers` go on every request (the admin page's
 * Authorization; nothing for a signed-in person). `onProgress(sent)` follows the bytes sent;
 * `onRetry(error)` says an interrupted chunk is being resumed. Resolves with the upload's URL.
 */
export async function tusUpload (file, { title = '', consent, headers = {}, onProgress = () => {}, onRetry = () => {} }) {
  onProgress(0)
  const metadata = [`filename ${b64(file.name)}`]
  if (title) metadata.push(`title ${b64(title)}`)
  metadata.push(`consent ${b64(consent)}`)
  const created = await request('/api/videos', headers, {
    method: 'POST',
    headers: { 'Upload-Length': String(file.size), 'Upload-Metadata': metadata.join(',') }
  })
  const url = created.headers.get('Location')
  let offset = 0
  let failures = 0
  while (offset < file.size) {
    try {
      offset = await patch(url, headers, offset, file.slice(offset, offset + CHUNK), onProgress)
      failures = 0
      onProgress(offset)
    } catch (error) {
      if (++failures > 5 || (error.status && error.status < 500 && error.status !== 409 && error.status !== 423)) throw error
      onRetry(error)
      await sleep(1000 * failures)
      // resume where the server stands
      offset = Number((await request(url, headers, { method: 'HEAD' })).headers.get('Upload-Offset'))
    }
  }
  return url
}

/** "Uploading lesson.mp4: 42% (3.1 of 7.4 MB)" */
export function progressText (file, sent) {
  return `Uploading ${file.name}: ${Math.floor((100 * sent) / Math.max(1, file.size))}% (${(sent / 1e6).toFixed(1)} of ${(file.size / 1e6).toFixed(1)} MB)`
}

/** A video's status in plain words (the library's JSON, docs/videos.md). */
export function statusText (v) {
  switch (v.status) {
    case 'uploading': return 'uploading '
    case 'queued': return 'waiting to be prepared'
    case 'ingesting': return `preparing ${Math.round(100 * v.progress)}% `
    case 'ready': return 'ready'
    case 'failed': return `failed: ${v.error ?? ''}`
    default: return v.status
  }
}
